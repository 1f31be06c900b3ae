"""The status tables, on the extension's own declarative base.

Our tables live on their own :class:`~sqlalchemy.MetaData`, so the host's
``db.create_all()`` / ``db.drop_all()`` never touch them and ours never touch
the host's. Their metadata carries the ``flask_status`` bind key; the
extension points that key at the app's default database unless
``SQLALCHEMY_BINDS["flask_status"]`` names another one.

* :class:`Route` - one row per URL rule the page may show.
* :class:`Log` - one row per (route, UTC minute, status code).
* :class:`LogHour`, :class:`LogDay` - roll-ups per (route, hour / day), kept
  up to date by every flush so the page never scans minute rows.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, validates

from .config import BIND_KEY, HISTOGRAM_SIZE, LATENCY_BOUNDS_MS, OUTCOME_NAMES

UNMATCHED_RULE = "<unmatched>"
"""Rule under which requests that matched no URL rule are counted; never shown."""

HISTOGRAM_COLUMNS = tuple(f"h{i}" for i in range(HISTOGRAM_SIZE))

#: Length of :func:`rule_key`'s hex digest.
RULE_KEY_LENGTH = 64


def rule_key(rule: str) -> str:
    """The key a rule is stored and looked up under: the SHA-256 of its UTF-8, in hex.

    Rules are compared by this key, never by their text, because the text
    column compares differently per database: MariaDB's default collation
    finds ``/Report`` equal to ``/report`` and ``/cafe`` to ``/café``, and a
    unique index on text limits its length. The key is fixed-length and
    plain ASCII, so it compares exactly everywhere, for a rule of any length.

    >>> rule_key("/") == rule_key("/")
    True
    >>> rule_key("/Report") == rule_key("/report")
    False
    """
    # surrogatepass: a lone surrogate still gets a key (the rule itself is
    # refused before it reaches the database; see routes.storable()).
    return hashlib.sha256(rule.encode("utf-8", "surrogatepass")).hexdigest()


def _rule_key_default(context: Any) -> str:
    return rule_key(context.get_current_parameters()["rule"])


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timestamp stored as naive UTC and always read back as aware UTC.

    MySQL and SQLite keep no time zone; storing UTC and re-attaching it on
    read gives the same aware values on all three databases.
    """

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use timezone.utc")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class CodeList(sa.TypeDecorator[list[int]]):
    """A list of HTTP status codes stored as JSON text (``"[404, 429]"``), or NULL.

    Text rather than the databases' JSON types: the three read it back alike,
    and a route table compares its rows whole (the snapshot reader does), so
    the value must come back as the same plain, sorted list of ints.
    """

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: list[int] | None, dialect: Any) -> str | None:
        if value is None:
            return None
        return json.dumps(sorted({int(code) for code in value}))

    def process_result_value(self, value: str | None, dialect: Any) -> list[int] | None:
        if value is None:
            return None
        return [int(code) for code in json.loads(value)]


class Base(DeclarativeBase):
    metadata = sa.MetaData(
        info={"bind_key": BIND_KEY},
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        },
    )


class Route(Base):
    """A URL rule of the host app, as the status page shows it."""

    __tablename__ = "flask_status_route"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The rule, whole: any length (MEDIUMTEXT on MySQL, whose TEXT stops at 64 KB).
    rule: Mapped[str] = mapped_column(
        sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")
    )
    #: :func:`rule_key` of :attr:`rule`: the unique key, exact on every database.
    rule_hash: Mapped[str] = mapped_column(
        sa.String(RULE_KEY_LENGTH), unique=True, default=_rule_key_default
    )
    endpoint: Mapped[str] = mapped_column(sa.String(255), default="")
    name: Mapped[str] = mapped_column(sa.String(100), default="")
    doc: Mapped[str] = mapped_column(sa.Text, default="")
    hidden: Mapped[bool] = mapped_column(default=False)
    #: Set once an operator named the route; the code's ``# Name`` no longer applies.
    custom_name: Mapped[bool] = mapped_column(default=False)
    #: Set once an operator wrote the description; the docstring no longer applies.
    custom_doc: Mapped[bool] = mapped_column(default=False)
    #: Order on the page: the order in which the app registered its rules.
    position: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    #: The operator's per-route overrides (admin, API, CLI); NULL: the global setting.
    #: The route's own failure codes, replacing ``FLASK_STATUS_FAILURE_CODES``; used
    #: when counts are written, so past counts keep the classification they had.
    failure_codes: Mapped[list[int] | None] = mapped_column(CodeList, nullable=True)
    #: p95 latency threshold (ms), replacing ``FLASK_STATUS_LATENCY_THRESHOLD_MS``.
    latency_threshold_ms: Mapped[float | None] = mapped_column(sa.Double, nullable=True)
    #: Service level objective in percent, replacing ``FLASK_STATUS_SLO_TARGET``.
    slo_target: Mapped[float | None] = mapped_column(sa.Double, nullable=True)

    @validates("rule")
    def _keep_key(self, _key: str, rule: str) -> str:
        # A rule set through the ORM keeps its key in step.
        self.rule_hash = rule_key(rule)
        return rule

    def __repr__(self) -> str:
        return f"<Route {self.rule!r} name={self.name!r}{' hidden' if self.hidden else ''}>"

    def __str__(self) -> str:
        return self.name or self.rule

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape the configure API answers with."""
        return {
            "id": self.id,
            "rule": self.rule,
            "endpoint": self.endpoint,
            "name": self.name,
            "doc": self.doc,
            "hidden": bool(self.hidden),
            "position": self.position,
            "updated_at": self.updated_at.strftime("%Y-%m-%dT%H:%M:%SZ")
            if self.updated_at
            else None,
            "failure_codes": self.failure_codes,
            "latency_threshold_ms": self.latency_threshold_ms,
            "slo_target": self.slo_target,
        }


class _LatencyMixin:
    """Latency figures in milliseconds: sum and max, and a histogram whose
    bucket ``hN`` counts requests up to ``LATENCY_BOUNDS_MS[N]`` (the last
    one, everything slower), so percentiles can be estimated after adding."""

    latency_sum: Mapped[float] = mapped_column(sa.Float, default=0.0)
    latency_max: Mapped[float] = mapped_column(sa.Float, default=0.0)
    h0: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    h1: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    h2: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    h3: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    h4: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    h5: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    h6: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    h7: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    h8: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    h9: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    h10: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    h11: Mapped[int] = mapped_column(sa.BigInteger, default=0)

    @property
    def histogram(self) -> tuple[int, ...]:
        return tuple(getattr(self, c) or 0 for c in HISTOGRAM_COLUMNS)

    @property
    def latency_p95(self) -> float | None:
        return percentile(self.histogram, 0.95, self.latency_max)


class Log(_LatencyMixin, Base):
    """Requests to one route, in one UTC minute, answered with one status code."""

    __tablename__ = "flask_status_log"
    __table_args__ = (sa.UniqueConstraint("route_id", "minute", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    route_id: Mapped[int] = mapped_column(
        sa.ForeignKey("flask_status_route.id", ondelete="CASCADE"), index=True
    )
    minute: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    status: Mapped[int] = mapped_column(sa.SmallInteger)
    #: 0 success, 1 failure, 2 neutral, fixed when the row was first written.
    outcome: Mapped[int] = mapped_column(sa.SmallInteger)
    count: Mapped[int] = mapped_column(sa.BigInteger, default=0)

    route: Mapped[Route] = relationship(lazy="joined")

    @property
    def outcome_name(self) -> str:
        return OUTCOME_NAMES.get(self.outcome, "?")

    @property
    def latency_mean(self) -> float | None:
        return self.latency_sum / self.count if self.count else None


class _Rollup(_LatencyMixin):
    id: Mapped[int] = mapped_column(primary_key=True)
    total: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    success: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    failure: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    neutral: Mapped[int] = mapped_column(sa.BigInteger, default=0)


class LogHour(_Rollup, Base):
    """Requests to one route in one UTC hour (all status codes)."""

    __tablename__ = "flask_status_log_hour"
    __table_args__ = (sa.UniqueConstraint("route_id", "hour"),)

    route_id: Mapped[int] = mapped_column(
        sa.ForeignKey("flask_status_route.id", ondelete="CASCADE"), index=True
    )
    hour: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class LogDay(_Rollup, Base):
    """Requests to one route in one UTC day (all status codes)."""

    __tablename__ = "flask_status_log_day"
    __table_args__ = (sa.UniqueConstraint("route_id", "day"),)

    route_id: Mapped[int] = mapped_column(
        sa.ForeignKey("flask_status_route.id", ondelete="CASCADE"), index=True
    )
    day: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class JournalSegment(Base):
    """A segment of a process's local journal whose counts are in the database.

    Written in the same transaction as the segment's counts, so that a replay
    after a crash between that commit and the file's deletion writes nothing
    twice (see :mod:`.journal`).
    """

    __tablename__ = "flask_status_journal"
    __table_args__ = (sa.UniqueConstraint("host", "segment"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    host: Mapped[str] = mapped_column(sa.String(255))
    segment: Mapped[str] = mapped_column(sa.String(100))
    written_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


#: The tables as :class:`~sqlalchemy.Table` objects, for Core statements
#: (``Model.__table__`` is typed as a plain ``FromClause``).
ROUTE_TABLE = cast(sa.Table, Route.__table__)
LOG_TABLE = cast(sa.Table, Log.__table__)
HOUR_TABLE = cast(sa.Table, LogHour.__table__)
DAY_TABLE = cast(sa.Table, LogDay.__table__)
JOURNAL_TABLE = cast(sa.Table, JournalSegment.__table__)


def percentile(histogram: tuple[int, ...] | list[int], q: float, maximum: float) -> float | None:
    """Estimate the ``q`` quantile (0-1) in ms from a fixed-bucket histogram.

    Interpolates linearly inside the bucket that holds the quantile; the
    open-ended last bucket is bounded by the observed maximum.
    """
    total = sum(histogram)
    if not total:
        return None
    target = q * total
    seen = 0
    lower = 0.0
    for index, count in enumerate(histogram):
        upper = LATENCY_BOUNDS_MS[index] if index < len(LATENCY_BOUNDS_MS) else max(maximum, lower)
        if count and seen + count >= target:
            fraction = (target - seen) / count
            return min(lower + (upper - lower) * fraction, maximum or upper)
        seen += count
        lower = upper
    return maximum
