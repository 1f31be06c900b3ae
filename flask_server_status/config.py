"""Every configuration key, its default, type and bounds, in one table; read once.

:class:`ConfigVars` names each key as a constant, in the manner of
Flask-Limiter. :data:`OPTIONS` gives each key its default, how its value is
checked and what it means; the README's configuration table is generated
from it (``config_table()``) and a test keeps the two
equal.

:func:`read_settings` checks every value and freezes them into a
:class:`Settings`. It changes nothing, so :meth:`FlaskStatus.init_app` can
refuse a bad configuration before it touches the app. A value of the wrong
type or out of range raises :class:`ConfigError` naming the key; nothing is
clamped or replaced silently. Changing ``app.config`` afterwards has no
effect, as with Flask-SQLAlchemy.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
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


class ConfigError(ValueError):
    """A configuration value the extension cannot run with; the message names the key."""


class ConfigVars:
    """The names of every configuration key the extension reads."""

    API_ENABLED = "FLASK_STATUS_API_ENABLED"
    API_SECRET = "FLASK_STATUS_API_SECRET"
    FLUSH_INTERVAL = "FLASK_STATUS_FLUSH_INTERVAL"
    BUFFER_MAX_KEYS = "FLASK_STATUS_BUFFER_MAX_KEYS"
    MINUTE_RETENTION_DAYS = "FLASK_STATUS_MINUTE_RETENTION_DAYS"
    HOUR_RETENTION_DAYS = "FLASK_STATUS_HOUR_RETENTION_DAYS"
    FAILURE_CODES = "FLASK_STATUS_FAILURE_CODES"
    STATUS_WINDOW = "FLASK_STATUS_STATUS_WINDOW"
    DEGRADED_RATIO = "FLASK_STATUS_DEGRADED_RATIO"
    PARTIAL_OUTAGE_RATIO = "FLASK_STATUS_PARTIAL_OUTAGE_RATIO"
    MAJOR_OUTAGE_RATIO = "FLASK_STATUS_MAJOR_OUTAGE_RATIO"
    MIN_REQUESTS = "FLASK_STATUS_MIN_REQUESTS"
    INCIDENT_MIN_FAILURES = "FLASK_STATUS_INCIDENT_MIN_FAILURES"
    INCIDENT_OPEN_MINUTES = "FLASK_STATUS_INCIDENT_OPEN_MINUTES"
    INCIDENT_CLOSE_MINUTES = "FLASK_STATUS_INCIDENT_CLOSE_MINUTES"
    VARIABLE_RULE_404 = "FLASK_STATUS_VARIABLE_RULE_404"
    LATENCY_THRESHOLD_MS = "FLASK_STATUS_LATENCY_THRESHOLD_MS"
    SLO_TARGET = "FLASK_STATUS_SLO_TARGET"
    SLO_WINDOW_DAYS = "FLASK_STATUS_SLO_WINDOW_DAYS"
    PAGE_TITLE = "FLASK_STATUS_PAGE_TITLE"
    LANGUAGE = "FLASK_STATUS_LANGUAGE"
    PUBLIC_URL = "FLASK_STATUS_PUBLIC_URL"
    SHOW_CREDIT = "FLASK_STATUS_SHOW_CREDIT"
    REFRESH_SECONDS = "FLASK_STATUS_REFRESH_SECONDS"
    PAGE_CACHE_SECONDS = "FLASK_STATUS_PAGE_CACHE_SECONDS"
    CACHE_SECONDS = "FLASK_STATUS_CACHE_SECONDS"
    ADMIN_USERNAME = "FLASK_STATUS_ADMIN_USERNAME"
    ADMIN_PASSWORD_HASH = "FLASK_STATUS_ADMIN_PASSWORD_HASH"
    JOURNAL = "FLASK_STATUS_JOURNAL"
    JOURNAL_DIR = "FLASK_STATUS_JOURNAL_DIR"
    EXIT_FLUSH_TIMEOUT = "FLASK_STATUS_EXIT_FLUSH_TIMEOUT"
    CONNECT_TIMEOUT = "FLASK_STATUS_DB_CONNECT_TIMEOUT"
    READ_TIMEOUT = "FLASK_STATUS_READ_TIMEOUT"
    WRITE_TIMEOUT = "FLASK_STATUS_WRITE_TIMEOUT"
    POOL_TIMEOUT = "FLASK_STATUS_POOL_TIMEOUT"


# -- checkers: each takes (key, raw value) and returns the value to keep ------------


Check = Callable[[str, Any], Any]


def _refuse(key: str, value: Any, expected: str) -> ConfigError:
    return ConfigError(f"{key} must be {expected}; got {value!r}")


def _number(kind: type, low: float | None, high: float | None, low_open: bool = False) -> Check:
    """A number of ``kind`` (int or float) in ``[low, high]`` (``(low, high]`` if ``low_open``).

    Strings holding a number are accepted, since config often comes from the
    environment; booleans are not numbers here.
    """
    noun = "a whole number" if kind is int else "a number"
    if low is not None and high is not None:
        noun += f" {'above' if low_open else 'from'} {low:g} {'up ' if low_open else ''}to {high:g}"
    elif low is not None:
        noun += f" {'above' if low_open else 'of at least'} {low:g}"

    def check(key: str, value: Any) -> Any:
        parsed: Any = value
        if isinstance(value, str):
            try:
                parsed = kind(value.strip())
            except ValueError:
                raise _refuse(key, value, noun) from None
        if isinstance(parsed, bool) or not isinstance(parsed, (int, float)):
            raise _refuse(key, value, noun)
        if kind is int and parsed != int(parsed):
            raise _refuse(key, value, noun)
        parsed = kind(parsed)
        if not math.isfinite(parsed):
            raise _refuse(key, value, noun)
        too_low = low is not None and (parsed <= low if low_open else parsed < low)
        if too_low or (high is not None and parsed > high):
            raise _refuse(key, value, noun)
        return parsed

    return check


def _optional(check: Check) -> Check:
    """``check``, or ``None`` for "off"."""

    def optional(key: str, value: Any) -> Any:
        return None if value is None else check(key, value)

    return optional


def _flag(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in {"1", "true", "yes", "on"}:
            return True
        if word in {"0", "false", "no", "off", ""}:
            return False
    raise _refuse(key, value, "true or false")


def _text(key: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _refuse(key, value, "a string")
    return value.strip() or None


def _secret(key: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(
            f"{key} must be a string (the Bearer token scripts send); got a"
            f" {type(value).__name__}. Write it in quotes, e.g. {key} = \"{value}\"."
        )
    # The original project documented the secret both with and without the
    # scheme; the scheme is not part of the token.
    token = value.strip()
    if token.lower() == "bearer" or token.lower().startswith("bearer "):
        token = token[7:].strip()
    return token or None


def _choice(*allowed: str) -> Check:
    def check(key: str, value: Any) -> str | None:
        if value is None:
            return None
        if value not in allowed:
            raise _refuse(key, value, "one of " + ", ".join(repr(a) for a in allowed))
        return str(value)

    return check


def _codes(key: str, value: Any) -> frozenset[int]:
    expected = "a list of 4xx status codes (every 5xx always fails)"
    items: Any = value
    if isinstance(value, str):
        items = value.replace(",", " ").split()
    if not isinstance(items, (list, tuple, set, frozenset)):
        raise _refuse(key, value, expected)
    codes: set[int] = set()
    for item in items:
        try:
            code = int(item)
        except (TypeError, ValueError):
            raise _refuse(key, value, expected) from None
        if isinstance(item, bool) or not 400 <= code <= 499 or str(code) != str(item).strip():
            raise _refuse(key, value, expected)
        codes.add(code)
    return frozenset(codes)


_URL = re.compile(r"^https?://[^\s/?#]+(/[^\s?#]*)?$")


def _url(key: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _URL.match(value.strip()):
        raise _refuse(key, value, "an absolute http(s) URL such as 'https://status.example.com'")
    return value.strip().rstrip("/")


_HASH = re.compile(r"^(scrypt|pbkdf2)(:[\w-]+)*\$[^$]+\$[0-9a-f]+$")


def _password_hash(key: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _HASH.match(value.strip()):
        raise ConfigError(
            f"{key} must be a password hash made by"
            " werkzeug.security.generate_password_hash(password), never the password"
            " itself; got a value that is not such a hash."
        )
    return value.strip()


@dataclass(frozen=True)
class Option:
    """One configuration key: its default, how a value is checked, what it means."""

    key: str
    default: Any
    check: Check
    meaning: str
    #: How the README writes the default (``repr`` of it when empty).
    default_text: str = ""
    #: The original project's name for the same key; the prefixed name wins.
    legacy: str | None = None
    #: The :class:`Settings` field; by default the key without its prefix.
    attr: str = ""

    @property
    def field(self) -> str:
        return self.attr or self.key.removeprefix("FLASK_STATUS_").lower()

    def shown_default(self) -> str:
        if self.default_text:
            return self.default_text
        if self.default is None:
            return "unset"
        if isinstance(self.default, frozenset):
            return "`" + repr(sorted(self.default)) + "`"
        return f"`{self.default!r}`"


V = ConfigVars

#: Every key, in the order of the README's table.
OPTIONS: tuple[Option, ...] = (
    Option(V.API_ENABLED, False, _flag, "register the configure API (the prefixed name wins)",
           legacy="API_ENABLED"),
    Option(V.API_SECRET, None, _secret,
           "its Bearer token (a string), with or without a leading `Bearer `;"
           " required when the API is enabled", legacy="API_SECRET"),
    Option(V.FLUSH_INTERVAL, 60.0, _number(float, 0, 86400, low_open=True),
           "seconds between background flushes", default_text="`60`"),
    Option(V.BUFFER_MAX_KEYS, 100_000, _number(int, 1, None),
           "most (rule, minute, status) counters a process keeps unwritten; beyond,"
           " requests are dropped, counted and logged", default_text="`100000`"),
    Option(V.MINUTE_RETENTION_DAYS, 7, _number(int, 1, 3650),
           "days of minute rows kept (incidents and the 60-minute strip read them)"),
    Option(V.HOUR_RETENTION_DAYS, 100, _number(int, 1, 3650), "days of hour roll-ups kept"),
    Option(V.FAILURE_CODES, frozenset({404}), _codes,
           "4xx codes counted as failures (every 5xx always is)"),
    Option(V.STATUS_WINDOW, 5, _number(int, 1, 60),
           "minutes (including the current one) a route's current status is computed from"),
    Option(V.DEGRADED_RATIO, 0.01, _number(float, 0, 1, low_open=True),
           "failure ratio from which a route is `degraded_performance`"),
    Option(V.PARTIAL_OUTAGE_RATIO, 0.10, _number(float, 0, 1, low_open=True),
           "… `partial_outage`; also what makes a minute \"failing\" for incidents"),
    Option(V.MAJOR_OUTAGE_RATIO, 0.50, _number(float, 0, 1, low_open=True),
           "… `major_outage`"),
    Option(V.MIN_REQUESTS, 10, _number(int, 1, 1_000_000),
           "classified requests a verdict needs; the status window reaches back minute by"
           " minute (up to 60) to find them, and a verdict on fewer is never worse than"
           " `degraded_performance`"),
    Option(V.INCIDENT_MIN_FAILURES, 3, _number(int, 1, 1_000_000),
           "failures a minute needs (besides the partial-outage ratio) to be failing"),
    Option(V.INCIDENT_OPEN_MINUTES, 2, _number(int, 1, 60),
           "failing minutes in a row that open an incident"),
    Option(V.INCIDENT_CLOSE_MINUTES, 5, _number(int, 1, 60),
           "minutes in a row with traffic and no failing minute that close it"),
    Option(V.VARIABLE_RULE_404, "neutral", _choice("neutral", "failure"),
           "what a 404 from a rule with URL variables (`/items/<int:id>`) counts as"),
    Option(V.LATENCY_THRESHOLD_MS, None, _optional(_number(float, 0, 600_000, low_open=True)),
           "p95 latency (ms) over the status window above which a route is at least"
           " `degraded_performance`; unset: off", default_text="unset (off)"),
    Option(V.SLO_TARGET, None, _optional(_number(float, 0, 100, low_open=True)),
           "service level objective in percent (e.g. `99.9`): error budget and burn rates"
           " on the page and in `summary.json`; unset: off", default_text="unset (off)"),
    Option(V.SLO_WINDOW_DAYS, 30, _number(int, 1, 90), "days the error budget is counted over"),
    Option(V.PAGE_TITLE, None, _text,
           "the page's title, `page.name` of `summary.json`",
           default_text="`\"Service status\"` (`\"Estado del servicio\"`)"),
    Option(V.LANGUAGE, None, _choice("en", "es"), "`\"en\"` or `\"es\"`",
           default_text="unset: from `Accept-Language`, else English"),
    Option(V.PUBLIC_URL, None, _url,
           "the app's public root, e.g. `https://example.com`: absolute links in"
           " cached public answers (feed, JSON, mails) are this plus the page's path;"
           " unset: links are relative, never taken from the request's `Host`"),
    Option(V.SHOW_CREDIT, True, _flag,
           "show \"Powered by flask-server-status\" in the page's footer"),
    Option(V.REFRESH_SECONDS, 60, _number(int, 1, 3600),
           "how often the open page refreshes itself"),
    Option(V.PAGE_CACHE_SECONDS, 5, _number(int, 0, 60),
           "how long a process may reuse a rendering of the page and `summary.json` for"
           " the same data (0 = render on every request)"),
    Option(V.CACHE_SECONDS, 30, _number(int, 0, 60),
           "`Cache-Control: public, max-age` of the page's answers"),
    Option(V.ADMIN_USERNAME, None, _text,
           "user name of the optional Basic auth of the admin views (needs the hash too)"),
    Option(V.ADMIN_PASSWORD_HASH, None, _password_hash,
           "`werkzeug.security.generate_password_hash(password)`, never the password"
           " (needs the user name too)"),
    Option(V.JOURNAL, True, _flag,
           "keep counts not yet written in a local journal, written by the next process"
           " on the host when this one could not (database down at exit, SIGKILL, OOM)"),
    Option(V.JOURNAL_DIR, None, _text,
           "folder of the local journal of counts not yet written",
           default_text="the app's instance folder"),
    Option(V.EXIT_FLUSH_TIMEOUT, 5.0, _number(float, 0, 3600, low_open=True),
           "seconds the exit flush may take before it leaves its counts to the journal",
           default_text="`5`"),
    Option(V.CONNECT_TIMEOUT, 5.0, _number(float, 0, 600, low_open=True),
           "seconds to wait for a connection to the status database", default_text="`5`"),
    Option(V.READ_TIMEOUT, 5.0, _number(float, 0, 600, low_open=True),
           "seconds a page, JSON, badge, admin or API read may wait on the database;"
           " then it answers 503", default_text="`5`"),
    Option(V.WRITE_TIMEOUT, 20.0, _number(float, 0, 3600, low_open=True),
           "seconds a background flush may wait on the database; then its counts are"
           " kept for the next one", default_text="`20`"),
    Option(V.POOL_TIMEOUT, 5.0, _number(float, 0, 600, low_open=True),
           "seconds to wait for a free pooled connection", default_text="`5`"),
)

OPTIONS_BY_KEY: Mapping[str, Option] = {option.key: option for option in OPTIONS}


@dataclass(frozen=True)
class Settings:
    """The extension's configuration for one app, checked and frozen by :func:`read_settings`."""

    api_enabled: bool = False
    api_secret: str | None = None
    flush_interval: float = 60.0
    buffer_max_keys: int = 100_000
    minute_retention_days: int = 7
    hour_retention_days: int = 100
    failure_codes: frozenset[int] = frozenset({404})
    status_window: int = 5
    degraded_ratio: float = 0.01
    partial_outage_ratio: float = 0.10
    major_outage_ratio: float = 0.50
    min_requests: int = 10
    incident_min_failures: int = 3
    incident_open_minutes: int = 2
    incident_close_minutes: int = 5
    variable_rule_404: str = "neutral"
    latency_threshold_ms: float | None = None
    slo_target: float | None = None
    slo_window_days: int = 30
    page_title: str | None = None
    language: str | None = None
    public_url: str | None = None
    show_credit: bool = True
    refresh_seconds: int = 60
    page_cache_seconds: int = 5
    cache_seconds: int = 30
    admin_username: str | None = None
    admin_password_hash: str | None = None
    journal: bool = True
    journal_dir: str | None = None
    exit_flush_timeout: float = 5.0
    db_connect_timeout: float = 5.0
    read_timeout: float = 5.0
    write_timeout: float = 20.0
    pool_timeout: float = 5.0

    @property
    def basic_auth(self) -> bool:
        """Whether the admin views ask for HTTP Basic credentials."""
        return bool(self.admin_username and self.admin_password_hash)


def _raw(config: Mapping[str, Any], option: Option) -> Any:
    if config.get(option.key) is not None:
        return config[option.key]
    if option.legacy is not None and config.get(option.legacy) is not None:
        return config[option.legacy]
    return option.default


def read_settings(config: Mapping[str, Any]) -> Settings:
    """Check every key of ``config`` and freeze the values into :class:`Settings`.

    Changes nothing, so a refused configuration leaves the app as it was.

    :raises ConfigError: naming the first key whose value is refused.
    """
    values = {option.key: option.check(option.key, _raw(config, option)) for option in OPTIONS}
    ratios = tuple(
        values[key] for key in (V.DEGRADED_RATIO, V.PARTIAL_OUTAGE_RATIO, V.MAJOR_OUTAGE_RATIO)
    )
    if not ratios[0] <= ratios[1] <= ratios[2]:
        raise ConfigError(
            f"{V.DEGRADED_RATIO} <= {V.PARTIAL_OUTAGE_RATIO} <= {V.MAJOR_OUTAGE_RATIO}"
            f" must hold; got {ratios}"
        )
    if values[V.HOUR_RETENTION_DAYS] < values[V.MINUTE_RETENTION_DAYS]:
        raise ConfigError(
            f"{V.HOUR_RETENTION_DAYS} ({values[V.HOUR_RETENTION_DAYS]}) must be at least"
            f" {V.MINUTE_RETENTION_DAYS} ({values[V.MINUTE_RETENTION_DAYS]}): hours are"
            " what older minutes are read from"
        )
    user, digest = values[V.ADMIN_USERNAME], values[V.ADMIN_PASSWORD_HASH]
    if bool(user) != bool(digest):
        given, missing = (
            (V.ADMIN_USERNAME, V.ADMIN_PASSWORD_HASH) if user else (V.ADMIN_PASSWORD_HASH,
                                                                     V.ADMIN_USERNAME)
        )
        raise ConfigError(
            f"{given} is set but {missing} is not: the admin's Basic auth needs both"
            " (the hash from werkzeug.security.generate_password_hash(password))."
            " The admin stays closed until both are set or both are removed."
        )
    if values[V.API_ENABLED] and not values[V.API_SECRET]:
        raise ConfigError(
            "API_ENABLED is set but API_SECRET is not: set API_SECRET (or"
            f" {V.API_SECRET}) to the Bearer token scripts will send."
        )
    return Settings(**{option.field: values[option.key] for option in OPTIONS})


def config_table() -> str:
    """The README's configuration table, as Markdown."""
    lines = ["| key | default | meaning |", "|---|---|---|"]
    lines.append(
        "| `SQLALCHEMY_DATABASE_URI` | `sqlite:///instance/flask_status.db`, with a warning"
        " | database for the status data (and the host's) |"
    )
    lines.append(
        "| `SQLALCHEMY_BINDS[\"flask_status\"]` | unset | a separate database for the status"
        " tables |"
    )
    for option in OPTIONS:
        key = f"`{option.legacy}` / `{option.key}`" if option.legacy else f"`{option.key}`"
        lines.append(f"| {key} | {option.shown_default()} | {option.meaning} |")
    return "\n".join(lines)
