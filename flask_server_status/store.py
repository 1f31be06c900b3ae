"""Writing counts: additive upserts per dialect, roll-ups, route rows, retention.

One flush is one transaction of three batched statements (minute rows, hour
roll-ups, day roll-ups), each an ``INSERT ... ON CONFLICT DO UPDATE SET
count = count + excluded.count`` (``ON DUPLICATE KEY UPDATE`` on MySQL), so
that any number of processes and hosts can add to the same rows without
reading them first. The transaction commits whole or not at all, so a failed
flush is simply retried later: no count is lost or written twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from .buffer import Counts
from .config import FAILURE, NEUTRAL, SUCCESS, Settings
from .models import (
    DAY_TABLE,
    HISTOGRAM_COLUMNS,
    HOUR_TABLE,
    LOG_TABLE,
    ROUTE_TABLE,
    UNMATCHED_RULE,
    Base,
    Log,
    LogHour,
)
from .registry import RouteSpec

log = logging.getLogger("flask_server_status")

_ROLLUP_ADD = ("total", "success", "failure", "neutral", "latency_sum", *HISTOGRAM_COLUMNS)
_MINUTE_ADD = ("count", "latency_sum", *HISTOGRAM_COLUMNS)
_RETRYABLE = ("deadlock", "lock wait timeout", "could not serialize", "1213", "40p01", "40001")


def epoch_minute_to_datetime(minute: int) -> datetime:
    return datetime.fromtimestamp(minute * 60, timezone.utc)


def _upsert(
    engine: Engine, table: sa.Table, keys: tuple[str, ...], add: Iterable[str]
) -> sa.Executable:
    """An insert that adds ``add`` columns to an existing row and keeps the max latency."""
    dialect = engine.dialect.name
    if dialect == "mysql" or dialect == "mariadb":
        from sqlalchemy.dialects.mysql import insert as mysql_insert

        my = mysql_insert(table)
        values: dict[str, Any] = {c: table.c[c] + my.inserted[c] for c in add}
        values["latency_max"] = sa.func.greatest(table.c.latency_max, my.inserted.latency_max)
        return my.on_duplicate_key_update(values)
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        pg = pg_insert(table)
        values = {c: table.c[c] + pg.excluded[c] for c in add}
        values["latency_max"] = sa.func.greatest(table.c.latency_max, pg.excluded.latency_max)
        return pg.on_conflict_do_update(index_elements=list(keys), set_=values)
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        lite = sqlite_insert(table)
        values = {c: table.c[c] + lite.excluded[c] for c in add}
        # SQLite's two-argument max() is its scalar GREATEST.
        values["latency_max"] = sa.func.max(table.c.latency_max, lite.excluded.latency_max)
        return lite.on_conflict_do_update(index_elements=list(keys), set_=values)
    raise RuntimeError(
        f"flask-server-status supports SQLite, PostgreSQL and MySQL/MariaDB, not {dialect!r}"
    )


def _insert_ignore(engine: Engine, table: sa.Table, key: str) -> sa.Executable:
    dialect = engine.dialect.name
    if dialect in ("mysql", "mariadb"):
        from sqlalchemy.dialects.mysql import insert as mysql_insert

        return mysql_insert(table).prefix_with("IGNORE")
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing(index_elements=[key])
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).on_conflict_do_nothing(index_elements=[key])


class Store:
    """Writes buffered counts for one app to its status database.

    :param engine: the engine of the ``flask_status`` bind.
    :param settings: the app's :class:`~.config.Settings`.
    """

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self._schema_ready = False
        self._ids: dict[str, int] = {}
        self._synced_signature: object = None
        # The first flush of each process prunes, then one an hour: monotonic()
        # counts from boot, so 0.0 here made the first prune depend on uptime,
        # and workers recycled within the hour never pruned.
        self._last_prune = float("-inf")
        self._lock = threading.Lock()
        self._statements: dict[str, sa.Executable] = {}

    # -- schema ---------------------------------------------------------------

    def ensure_schema(self) -> None:
        """Create the ``flask_status_*`` tables that are missing (idempotent)."""
        if self._schema_ready:
            return
        with self._lock:
            if self._schema_ready:
                return
            if self.engine.dialect.name == "sqlite" and self.engine.url.database not in (
                None,
                "",
                ":memory:",
            ):
                # WAL lets readers (the page) run beside the flush's writer.
                with self.engine.connect() as conn:
                    conn.exec_driver_sql("PRAGMA journal_mode=WAL")
            try:
                Base.metadata.create_all(self.engine)
            except sa.exc.DBAPIError:
                # Several workers starting together race to CREATE TABLE; the
                # loser sees "already exists" and the tables are there.
                Base.metadata.create_all(self.engine)
            self._schema_ready = True

    # -- routes -----------------------------------------------------------------

    def sync_routes(self, specs: Mapping[str, RouteSpec], signature: object) -> dict[str, int]:
        """Make sure every rule in ``specs`` has a row and return ``rule -> id``.

        Code-owned fields (endpoint, name, description, position) follow the
        code unless an operator set the name or description. Rows are only
        written when something changed, and only once per ``signature``.
        """
        self.ensure_schema()
        if signature == self._synced_signature and self._ids:
            return self._ids
        table = ROUTE_TABLE
        with self.engine.begin() as conn:
            existing = {row.rule: row for row in conn.execute(sa.select(table))}
            now = datetime.now(timezone.utc)
            new = [
                {
                    "rule": spec.rule,
                    "endpoint": spec.endpoint,
                    "name": spec.name,
                    "doc": spec.doc,
                    "hidden": False,
                    "custom_name": False,
                    "custom_doc": False,
                    "position": spec.position,
                    "created_at": now,
                    "updated_at": now,
                }
                for spec in specs.values()
                if spec.rule not in existing
            ]
            if UNMATCHED_RULE not in existing:
                new.append(
                    {
                        "rule": UNMATCHED_RULE,
                        "endpoint": "",
                        "name": "Unmatched requests",
                        "doc": "Requests that matched no URL rule.",
                        "hidden": True,
                        "custom_name": False,
                        "custom_doc": False,
                        "position": 1_000_000,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
            if new:
                conn.execute(_insert_ignore(self.engine, table, "rule"), new)
            for spec in specs.values():
                row = existing.get(spec.rule)
                if row is None:
                    continue
                changes: dict[str, Any] = {}
                if row.endpoint != spec.endpoint:
                    changes["endpoint"] = spec.endpoint
                if row.position != spec.position:
                    changes["position"] = spec.position
                if not row.custom_name and row.name != spec.name:
                    changes["name"] = spec.name
                if not row.custom_doc and row.doc != spec.doc:
                    changes["doc"] = spec.doc
                if changes:
                    # The guard on custom_* keeps an operator's rename made
                    # by another process since our read.
                    stmt = sa.update(table).where(table.c.id == row.id)
                    if "name" in changes:
                        stmt = stmt.where(table.c.custom_name == sa.false())
                    if "doc" in changes:
                        stmt = stmt.where(table.c.custom_doc == sa.false())
                    conn.execute(stmt.values(**changes, updated_at=now))
        # Read the ids in a new transaction: under MySQL's REPEATABLE READ the
        # one above still sees the snapshot of its first read, without the rows
        # another worker inserted meanwhile (our INSERT IGNORE skipped them), and
        # counts for rules without an id are not stored.
        with self.engine.connect() as conn:
            ids = {row.rule: row.id for row in conn.execute(sa.select(table.c.rule, table.c.id))}
        self._ids = ids
        self._synced_signature = signature
        return ids

    # -- counts -------------------------------------------------------------------

    def _statement(self, name: str) -> sa.Executable:
        stmt = self._statements.get(name)
        if stmt is None:
            if name == "minute":
                stmt = _upsert(
                    self.engine, LOG_TABLE, ("route_id", "minute", "status"), _MINUTE_ADD
                )
            elif name == "hour":
                stmt = _upsert(self.engine, HOUR_TABLE, ("route_id", "hour"), _ROLLUP_ADD)
            else:
                stmt = _upsert(self.engine, DAY_TABLE, ("route_id", "day"), _ROLLUP_ADD)
            self._statements[name] = stmt
        return stmt

    def rows(
        self, counts: Counts, ids: Mapping[str, int]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        """Turn buffered counts into minute, hour and day rows, sorted by key.

        Counts for rules without an id (static files, admin pages, rules left
        out by ``routes=``) are not stored.
        """
        classify = self.settings.classify
        minutes: list[dict[str, Any]] = []
        hours: dict[tuple[int, int], list[float]] = {}
        days: dict[tuple[int, int], list[float]] = {}
        histogram_size = len(HISTOGRAM_COLUMNS)
        for (rule, minute, status), slot in counts.items():
            route_id = ids.get(rule)
            if route_id is None:
                continue
            outcome = classify(status)
            row: dict[str, Any] = {
                "route_id": route_id,
                "minute": minute,
                "status": status,
                "outcome": outcome,
                "count": int(slot[0]),
                "latency_sum": float(slot[1]),
                "latency_max": float(slot[2]),
            }
            for i, column in enumerate(HISTOGRAM_COLUMNS):
                row[column] = int(slot[3 + i])
            minutes.append(row)
            for bucket, size in ((hours, 60), (days, 1440)):
                key = (route_id, minute // size * size)
                agg = bucket.get(key)
                if agg is None:
                    agg = bucket[key] = [0.0] * (6 + histogram_size)
                agg[0] += slot[0]
                agg[1 + (0 if outcome == SUCCESS else 1 if outcome == FAILURE else 2)] += slot[0]
                agg[4] += slot[1]
                if slot[2] > agg[5]:
                    agg[5] = slot[2]
                for i in range(histogram_size):
                    agg[6 + i] += slot[3 + i]

        # A fixed order keeps concurrent writers from deadlocking on row locks.
        minutes.sort(key=lambda r: (r["route_id"], r["minute"], r["status"]))
        for row in minutes:
            row["minute"] = epoch_minute_to_datetime(row["minute"])

        def rollups(bucket: dict[tuple[int, int], list[float]], column: str) -> list[dict]:
            out = []
            for (route_id, minute), agg in sorted(bucket.items()):
                row = {
                    "route_id": route_id,
                    column: epoch_minute_to_datetime(minute),
                    "total": int(agg[0]),
                    "success": int(agg[1]),
                    "failure": int(agg[2]),
                    "neutral": int(agg[3]),
                    "latency_sum": agg[4],
                    "latency_max": agg[5],
                }
                for i, name in enumerate(HISTOGRAM_COLUMNS):
                    row[name] = int(agg[6 + i])
                out.append(row)
            return out

        assert NEUTRAL == 2  # the agg index above relies on it
        return minutes, rollups(hours, "hour"), rollups(days, "day")

    def write(self, counts: Counts, ids: Mapping[str, int]) -> int:
        """Add ``counts`` to the database in one transaction; return requests stored."""
        minutes, hours, days = self.rows(counts, ids)
        if not minutes:
            return 0
        # Before the write, so a flush never deletes what it has just written.
        self.maybe_prune()
        for attempt in range(4):
            try:
                with self.engine.begin() as conn:
                    conn.execute(self._statement("minute"), minutes)
                    conn.execute(self._statement("hour"), hours)
                    conn.execute(self._statement("day"), days)
                break
            except sa.exc.DBAPIError as exc:
                # The transaction was rolled back whole, so a retry cannot
                # double anything; only lock conflicts are worth it now.
                if attempt == 3 or not any(s in str(exc.orig).lower() for s in _RETRYABLE):
                    raise
                time.sleep(0.05 * (attempt + 1))
        return sum(row["count"] for row in minutes)

    # -- retention ------------------------------------------------------------------

    def maybe_prune(self, every: float = 3600.0) -> None:
        if time.monotonic() - self._last_prune < every:
            return
        self._last_prune = time.monotonic()
        try:
            self.prune()
        except sa.exc.DBAPIError as exc:  # retention can wait for the next hour
            log.warning("flask-server-status: pruning old rows failed: %s", exc)

    def prune(self, now: datetime | None = None) -> int:
        """Delete minute and hour rows older than their retention; return rows deleted."""
        self.ensure_schema()
        now = now or datetime.now(timezone.utc)
        deleted = 0
        with self.engine.begin() as conn:
            minute_cutoff = now - timedelta(days=self.settings.minute_retention_days)
            result = conn.execute(sa.delete(LOG_TABLE).where(Log.minute < minute_cutoff))
            deleted += result.rowcount or 0
            hour_cutoff = now - timedelta(days=self.settings.hour_retention_days)
            result = conn.execute(sa.delete(HOUR_TABLE).where(LogHour.hour < hour_cutoff))
            deleted += result.rowcount or 0
        return deleted
