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
from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from . import verdicts
from .buffer import Counts
from .config import FAILURE, NEUTRAL, SUCCESS, Settings
from .models import (
    DAY_TABLE,
    HISTOGRAM_COLUMNS,
    HOUR_TABLE,
    LOG_TABLE,
    Base,
    Log,
    LogHour,
)
from .routes import RouteSpec, RouteTable, add_missing_columns, check_ids, upgrade_route_table

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


class Store:
    """Writes buffered counts for one app to its status database.

    :param engine: the engine of the ``flask_status`` bind.
    :param settings: the app's :class:`~.config.Settings`.
    """

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self._schema_ready = False
        #: The route rows and their ids (:class:`~.routes.RouteTable`).
        self.routes = RouteTable(engine, self.ensure_schema)
        # The first flush of each process prunes, then one an hour: monotonic()
        # counts from boot, so 0.0 here made the first prune depend on uptime,
        # and workers recycled within the hour never pruned.
        self._last_prune = float("-inf")
        self._lock = threading.Lock()
        self._statements: dict[str, sa.Executable] = {}
        #: The routes' own failure codes as the last flush read them (route id -> codes).
        self._codes: dict[int, frozenset[int]] = {}

    def after_fork(self) -> None:
        """In a forked child: a lock held by a parent thread at fork time is never released."""
        self._lock = threading.Lock()

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
            # A route table made by an earlier version gets its rule keys.
            upgrade_route_table(self.engine)
            # ... and the per-route override columns (NULL: the global settings).
            add_missing_columns(self.engine)
            self._schema_ready = True

    # -- routes -----------------------------------------------------------------

    def sync_routes(self, specs: Mapping[str, RouteSpec], signature: object) -> dict[str, int]:
        """Make sure every rule in ``specs`` has a row; ``rule -> id``.

        The route table's work: see :meth:`.RouteTable.sync`.
        """
        return self.routes.sync(specs, signature)

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
        self,
        counts: Counts,
        ids: Mapping[str, int],
        failure_codes: Mapping[int, Collection[int]] | None = None,
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        """Turn buffered counts into minute, hour and day rows, sorted by key.

        Counts for rules without an id (static files, admin pages, rules left
        out by ``routes=``) are not stored.

        :param failure_codes: per route id, the route's own failure codes
            (:meth:`.RouteTable.failure_codes`); other routes use the global set.
            The outcome is fixed here, when the counts are written: changing a
            route's codes later classifies its next counts, never its past ones.
        """
        own_codes = failure_codes or {}
        settings = self.settings
        minutes: list[dict[str, Any]] = []
        hours: dict[tuple[int, int], list[float]] = {}
        days: dict[tuple[int, int], list[float]] = {}
        histogram_size = len(HISTOGRAM_COLUMNS)
        for (rule, minute, status), slot in counts.items():
            route_id = ids.get(rule)
            if route_id is None:
                continue
            # By the rule too: a 404 from /items/<id> is a missing item, not an outage.
            outcome = verdicts.classify(settings, status, rule, own_codes.get(route_id))
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

        def rollups(
            bucket: dict[tuple[int, int], list[float]], column: str
        ) -> list[dict[str, Any]]:
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

    def write(
        self,
        counts: Counts,
        ids: Mapping[str, int],
        in_transaction: Callable[[Connection], None] | None = None,
    ) -> int:
        """Add ``counts`` to the database in one transaction; return requests stored.

        :param in_transaction: run in the same transaction before the counts
            are written (the journal records which of its segments these
            counts are, so that they are never written twice); it may raise
            to roll everything back.
        """
        # Classified with the codes the last flush read; checked again in the
        # transaction below, and classified again only if they changed since.
        codes = self._codes
        minutes, hours, days = self.rows(counts, ids, codes)
        if not minutes:
            return 0
        # Before the write, so a flush never deletes what it has just written.
        self.maybe_prune()
        rules_by_id = {ids[rule]: rule for rule in {key[0] for key in counts} if rule in ids}
        for attempt in range(4):
            try:
                with self.engine.begin() as conn:
                    # A restore may have taken our ids away or given them to
                    # other rules: raises RouteTableChanged before any write.
                    check_ids(conn, rules_by_id)
                    # An operator may have changed a route's failure codes in any
                    # process: read them in this transaction, beside the ids.
                    current = self.routes.failure_codes(conn)
                    if current != codes:
                        self._codes = codes = current
                        minutes, hours, days = self.rows(counts, ids, codes)
                    if in_transaction is not None:
                        in_transaction(conn)
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
