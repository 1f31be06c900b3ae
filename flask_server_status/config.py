"""The configuration keys, their defaults, and reading them once.

Every key is read in :meth:`FlaskStatus.init_app` and frozen into a
:class:`Settings`; changing ``app.config`` afterwards has no effect, as with
Flask-SQLAlchemy. The README's table lists the same keys.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: Bind key of the status tables. When ``SQLALCHEMY_BINDS`` has no entry under
#: this name, the key is pointed at the app's default database.
BIND_KEY = "flask_status"

#: Upper bounds (milliseconds) of the latency histogram buckets. The last
#: bucket is open-ended. Changing these changes the meaning of stored rows,
#: so they are fixed, not configurable.
LATENCY_BOUNDS_MS: tuple[float, ...] = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
HISTOGRAM_SIZE = len(LATENCY_BOUNDS_MS) + 1

SUCCESS, FAILURE, NEUTRAL = 0, 1, 2
OUTCOME_NAMES = {SUCCESS: "success", FAILURE: "failure", NEUTRAL: "neutral"}

DEFAULTS: dict[str, Any] = {
    "FLASK_STATUS_FLUSH_INTERVAL": 60,
    "FLASK_STATUS_BUFFER_MAX_KEYS": 100_000,
    "FLASK_STATUS_MINUTE_RETENTION_DAYS": 7,
    "FLASK_STATUS_HOUR_RETENTION_DAYS": 100,
    "FLASK_STATUS_FAILURE_CODES": (404,),
    "FLASK_STATUS_STATUS_WINDOW": 5,
    "FLASK_STATUS_DEGRADED_RATIO": 0.01,
    "FLASK_STATUS_PARTIAL_OUTAGE_RATIO": 0.10,
    "FLASK_STATUS_MAJOR_OUTAGE_RATIO": 0.50,
    "FLASK_STATUS_INCIDENT_GAP": 2,
    "FLASK_STATUS_PAGE_TITLE": None,
    "FLASK_STATUS_LANGUAGE": None,
    "FLASK_STATUS_ADMIN_USERNAME": None,
    "FLASK_STATUS_ADMIN_PASSWORD_HASH": None,
}


@dataclass(frozen=True)
class Settings:
    """The extension's configuration for one app, read once."""

    flush_interval: float = 60
    buffer_max_keys: int = 100_000
    minute_retention_days: int = 7
    hour_retention_days: int = 100
    failure_codes: frozenset[int] = frozenset({404})
    status_window: int = 5
    degraded_ratio: float = 0.01
    partial_outage_ratio: float = 0.10
    major_outage_ratio: float = 0.50
    incident_gap: int = 2
    page_title: str | None = None
    language: str | None = None
    api_enabled: bool = False
    api_secret: str | None = None
    admin_username: str | None = None
    admin_password_hash: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def classify(self, code: int) -> int:
        """Return :data:`SUCCESS`, :data:`FAILURE` or :data:`NEUTRAL` for a status code.

        100-399 succeed; every 5xx and the codes in ``FLASK_STATUS_FAILURE_CODES``
        (404 by default) fail; any other code (the rest of 4xx) is neutral: the
        client's fault, counted but left out of uptime.
        """
        if code < 400:
            return SUCCESS
        if code >= 500 or code in self.failure_codes:
            return FAILURE
        return NEUTRAL


def _prefixed(config: Mapping[str, Any], name: str, default: Any = None) -> Any:
    """Read ``FLASK_STATUS_<name>``, falling back to the original project's bare ``<name>``."""
    prefixed = f"FLASK_STATUS_{name}"
    if config.get(prefixed) is not None:
        return config[prefixed]
    return config.get(name, default)


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)


def _codes(value: Iterable[int] | str) -> frozenset[int]:
    if isinstance(value, str):
        value = [int(part) for part in value.replace(",", " ").split()]
    codes = frozenset(int(code) for code in value)
    bad = sorted(code for code in codes if not 400 <= code <= 499)
    if bad:
        raise ValueError(
            f"FLASK_STATUS_FAILURE_CODES takes 4xx codes only (every 5xx always fails); got {bad}"
        )
    return codes


def read_settings(config: dict[str, Any]) -> Settings:
    """Fill in the defaults on ``app.config`` and freeze them into :class:`Settings`."""
    for key, value in DEFAULTS.items():
        config.setdefault(key, value)

    secret = _prefixed(config, "API_SECRET")
    if isinstance(secret, str):
        # The original project documented the secret both with and without the
        # scheme; the scheme is not part of the token.
        secret = secret.strip()
        if secret.lower() == "bearer" or secret.lower().startswith("bearer "):
            secret = secret[7:].strip()
        secret = secret or None

    ratios = (
        float(config["FLASK_STATUS_DEGRADED_RATIO"]),
        float(config["FLASK_STATUS_PARTIAL_OUTAGE_RATIO"]),
        float(config["FLASK_STATUS_MAJOR_OUTAGE_RATIO"]),
    )
    if not 0 < ratios[0] <= ratios[1] <= ratios[2] <= 1:
        raise ValueError(
            "FLASK_STATUS_DEGRADED_RATIO <= FLASK_STATUS_PARTIAL_OUTAGE_RATIO <="
            f" FLASK_STATUS_MAJOR_OUTAGE_RATIO must hold, each in (0, 1]; got {ratios}"
        )
    interval = float(config["FLASK_STATUS_FLUSH_INTERVAL"])
    if interval <= 0:
        raise ValueError(f"FLASK_STATUS_FLUSH_INTERVAL must be positive; got {interval}")

    return Settings(
        flush_interval=interval,
        buffer_max_keys=int(config["FLASK_STATUS_BUFFER_MAX_KEYS"]),
        minute_retention_days=int(config["FLASK_STATUS_MINUTE_RETENTION_DAYS"]),
        hour_retention_days=int(config["FLASK_STATUS_HOUR_RETENTION_DAYS"]),
        failure_codes=_codes(config["FLASK_STATUS_FAILURE_CODES"]),
        status_window=max(1, int(config["FLASK_STATUS_STATUS_WINDOW"])),
        degraded_ratio=ratios[0],
        partial_outage_ratio=ratios[1],
        major_outage_ratio=ratios[2],
        incident_gap=max(0, int(config["FLASK_STATUS_INCIDENT_GAP"])),
        page_title=config["FLASK_STATUS_PAGE_TITLE"],
        language=config["FLASK_STATUS_LANGUAGE"],
        api_enabled=_bool(_prefixed(config, "API_ENABLED", False)),
        api_secret=secret,
        admin_username=config["FLASK_STATUS_ADMIN_USERNAME"],
        admin_password_hash=config["FLASK_STATUS_ADMIN_PASSWORD_HASH"],
        extra={k: v for k, v in config.items() if k.startswith("FLASK_STATUS_")},
    )
