"""Which URL rules the page shows, what it calls them, and their rows in the route table.

Routes come from ``app.url_map`` (so rules added after ``FlaskStatus(app)``
are found on the next sync); the name from a ``# Name`` line of the view's
docstring, the rest of the docstring being the description. Static files,
the extension's own endpoints and Flask-Admin's are never tracked.

:class:`RouteTable` owns the link between the app's rules and the rows of
``flask_status_route``: it writes the rows, keeps the ``rule -> id`` map and
the url_map signature it was read at, and reads the table again when told
it changed behind the process's back (a restore, a truncate). Rows are keyed
by :func:`~.models.rule_key`, a SHA-256 of the rule, so rules of any length
are told apart exactly on every database, whatever its collation.
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from flask import Flask
from sqlalchemy.engine import Engine

from .models import ROUTE_TABLE, UNMATCHED_RULE, rule_key

log = logging.getLogger("flask_server_status")

_NAME_LINE = re.compile(r"^\s*#\s*(?P<name>\S.*?)\s*$")

#: The public page's blueprint.
PAGE_BLUEPRINT = "flask_status"
#: The configure API's blueprint.
API_BLUEPRINT = "flask_status_api"
#: The endpoints of our Flask-Admin views; each view is a blueprint of that name.
ROUTES_ENDPOINT = "flask_status_routes"
LOGS_ENDPOINT = "flask_status_logs"
OVERVIEW_ENDPOINT = "flask_status_overview"
#: Every blueprint of the extension: never tracked as a route, and the ones
#: after whose requests the session is removed (see ``extension``).
OWN_BLUEPRINTS = frozenset(
    {PAGE_BLUEPRINT, API_BLUEPRINT, ROUTES_ENDPOINT, LOGS_ENDPOINT, OVERVIEW_ENDPOINT}
)

#: Longest endpoint kept (the column's length); endpoints are shown, never matched.
ENDPOINT_MAX = 255


@dataclass(frozen=True)
class RouteSpec:
    """A rule as the code describes it."""

    rule: str
    endpoint: str
    name: str
    doc: str
    position: int


def parse_docstring(doc: str | None, fallback: str) -> tuple[str, str]:
    """Split a view docstring into ``(name, description)``.

    >>> parse_docstring('''
    ...     # Index
    ...     The landing page.
    ... ''', "index")
    ('Index', 'The landing page.')
    >>> parse_docstring("Just words.", "index")
    ('index', 'Just words.')
    """
    if not doc:
        return fallback, ""
    lines = inspect.cleandoc(doc).splitlines()
    name = fallback
    for index, line in enumerate(lines):
        match = _NAME_LINE.match(line)
        if match:
            name = match.group("name")
            del lines[index]
            break
    return name[:100], "\n".join(lines).strip()


def _view_doc(view: Callable[..., Any] | None) -> str | None:
    if view is None:
        return None
    view_class = getattr(view, "view_class", None)  # MethodView.as_view()
    return inspect.getdoc(view_class) if view_class is not None else inspect.getdoc(view)


def _admin_blueprints(app: Flask) -> set[str]:
    """Names of the blueprints Flask-Admin made for its views (every ``Admin`` of the app).

    Flask-Admin builds each view's blueprint in ``flask_admin.base``, so its
    ``import_name`` tells them apart through Flask's public ``app.blueprints``,
    without reaching into ``Admin._views``.
    """
    return {
        name
        for name, blueprint in app.blueprints.items()
        if blueprint.import_name.startswith("flask_admin.")
    }


def collect(app: Flask, only: Iterable[str] | None = None) -> dict[str, RouteSpec]:
    """The rules of ``app`` the page may show, keyed by rule string.

    :param only: the ``routes=`` list given to the extension, if any.
    """
    wanted = set(only) if only is not None else None
    skip_blueprints = OWN_BLUEPRINTS | _admin_blueprints(app)
    specs: dict[str, RouteSpec] = {}
    for position, rule in enumerate(app.url_map.iter_rules()):
        endpoint = rule.endpoint
        blueprint = endpoint.rpartition(".")[0]
        if endpoint == "static" or endpoint.endswith(".static") or blueprint in skip_blueprints:
            continue
        if wanted is not None and rule.rule not in wanted:
            continue
        if rule.rule in specs:  # the same path for other methods, other view
            continue
        name, doc = parse_docstring(_view_doc(app.view_functions.get(endpoint)), endpoint)
        specs[rule.rule] = RouteSpec(
            rule.rule, _clean(endpoint)[:ENDPOINT_MAX], _clean(name), _clean(doc), position
        )
    return specs


def _clean(text: str) -> str:
    """``text`` without what no database column can hold (shown, never matched)."""
    if storable(text) is None:
        return text
    return "".join("\ufffd" if c == "\x00" or "\ud800" <= c <= "\udfff" else c for c in text)


def url_map_signature(app: Flask) -> int:
    """Changes whenever rules are added to the app (Flask never removes any).

    The number of rules, counted through the public ``iter_rules()``: a few
    microseconds for a few hundred rules, and it runs once per flush or page
    read, never per request.
    """
    return sum(1 for _ in app.url_map.iter_rules())


def storable(text: str) -> str | None:
    """Why ``text`` cannot be stored in a text column of every database, or None.

    PostgreSQL refuses NUL in text, and a lone surrogate has no UTF-8 form;
    Werkzeug accepts both in a rule.
    """
    if "\x00" in text:
        return "it contains a NUL character, which PostgreSQL cannot store"
    if any("\ud800" <= c <= "\udfff" for c in text):
        return "it contains a lone surrogate, which has no UTF-8 form"
    return None


class RouteTableChanged(Exception):
    """The route ids this process holds no longer match the table (a restore, a truncate).

    Raised by :func:`check_ids` inside a flush's transaction, before anything is
    written; the flush reads the table again (:meth:`RouteTable.forget`) and
    retries once.
    """


def check_ids(conn: sa.Connection, rules_by_id: Mapping[int, str]) -> None:
    """Make sure each id in ``rules_by_id`` is still the row of its rule.

    One indexed read of the rows a flush is about to add to. A foreign key
    would only catch a missing row, and not on SQLite (which does not enforce
    them by default); a restore that gave the ids to other rules would have
    the counts land on the wrong routes.

    :raises RouteTableChanged: naming how many ids are gone or moved.
    """
    if not rules_by_id:
        return
    table = ROUTE_TABLE
    # Between the lowest and the highest id, not IN (...): two parameters
    # instead of one per route (binding 500 cost 20 ms on PostgreSQL), and the
    # route table is small enough that the few rows in between cost nothing.
    query = sa.select(table.c.id, table.c.rule_hash).where(
        table.c.id.between(min(rules_by_id), max(rules_by_id))
    )
    found = {row_id: key for row_id, key in conn.execute(query)}
    wrong = [i for i, rule in rules_by_id.items() if found.get(i) != rule_key(rule)]
    if wrong:
        gone = sum(1 for i in wrong if i not in found)
        raise RouteTableChanged(
            f"the route table changed behind this process: {gone} route ids are gone and"
            f" {len(wrong) - gone} belong to other rules now"
        )


def _insert_ignore(engine: Engine, table: sa.Table, key: str) -> sa.Executable:
    """An insert that skips rows whose ``key`` is taken (another worker was first)."""
    dialect = engine.dialect.name
    if dialect in ("mysql", "mariadb"):
        from sqlalchemy.dialects.mysql import insert as mysql_insert

        # Not INSERT IGNORE: that also turns a value the column cannot hold
        # into a warning and stores it mangled, where we want the error.
        return mysql_insert(table).on_duplicate_key_update({key: table.c[key]})
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing(index_elements=[key])
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).on_conflict_do_nothing(index_elements=[key])


def _reason(exc: BaseException) -> str:
    """The first line of a database error, without the SQL and its parameters."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return f"{type(orig).__name__}: {text[0] if text else ''}"[:300]


def _new_row(spec: RouteSpec, now: datetime) -> dict[str, Any]:
    return {
        "rule_hash": rule_key(spec.rule),
        "rule": spec.rule,
        "endpoint": spec.endpoint,
        "name": spec.name,
        "doc": spec.doc,
        # Requests that matched no rule are counted, never shown.
        "hidden": spec.rule == UNMATCHED_RULE,
        "custom_name": False,
        "custom_doc": False,
        "position": spec.position,
        "created_at": now,
        "updated_at": now,
    }


_UNMATCHED = RouteSpec(
    UNMATCHED_RULE, "", "Unmatched requests", "Requests that matched no URL rule.", 1_000_000
)


class RouteTable:
    """The app's rules and their rows in ``flask_status_route``, for one process.

    Reach it as ``get_state(app).store.routes``. :meth:`ids_for` is what the
    flush and the readers call: it syncs only when the url_map grew (or after
    :meth:`forget`), otherwise it answers from memory.

    :param engine: the engine of the ``flask_status`` bind.
    :param ensure_schema: creates the tables if missing; called before a sync.
    """

    def __init__(self, engine: Engine, ensure_schema: Callable[[], None]) -> None:
        self.engine = engine
        self._ensure_schema = ensure_schema
        # One attribute, replaced whole: a reader in another thread sees the
        # old pair or the new one, never the new ids with the old signature.
        self._synced: tuple[object, dict[str, int]] = (None, {})
        self._refused: dict[str, str] = {}

    # -- what is known ----------------------------------------------------------

    @property
    def ids(self) -> Mapping[str, int]:
        """``rule -> id`` as last synced (empty before the first sync). Read only."""
        return self._synced[1]

    @property
    def signature(self) -> object:
        """The url_map signature the ids were synced at, or None (never, or forgotten)."""
        return self._synced[0]

    @property
    def refused(self) -> Mapping[str, str]:
        """Rules of the app that cannot be stored, with the reason; their counts are dropped."""
        return dict(self._refused)

    def is_current(self, signature: object) -> bool:
        """Whether the ids were synced at ``signature`` and can be used as they are."""
        synced, ids = self._synced
        return synced is not None and synced == signature and bool(ids)

    def count_refused(self, counts: Mapping[tuple[str, int, int], Sequence[float]]) -> int:
        """Requests in ``counts`` to rules in :attr:`refused`, logged with the reason.

        The flush stores none of them (they have no id); the caller adds the
        number to the buffer's ``dropped``, so no request vanishes unseen.
        """
        refused = self._refused
        if not refused:
            return 0
        lost: dict[str, int] = {}
        for (rule, _minute, _status), slot in counts.items():
            if rule in refused:
                lost[rule] = lost.get(rule, 0) + int(slot[0])
        for rule, number in lost.items():
            log.error(
                "flask-server-status: dropped %d requests to %r: %s",
                number,
                rule[:200],
                refused[rule],
            )
        return sum(lost.values())

    def forget(self) -> None:
        """Read the table again on the next :meth:`ids_for` (it changed behind our back)."""
        self._synced = (None, {})

    def failure_codes(self, conn: sa.Connection | None = None) -> dict[int, frozenset[int]]:
        """Per route id, the route's own failure codes, for the routes that have them.

        Read from the table on every call (one small read of the route table),
        not kept: an operator may change them in any process, and the flush
        that classifies the next counts must see it. A route missing from the
        answer uses ``FLASK_STATUS_FAILURE_CODES``.

        :param conn: read on this connection (the flush's own transaction, so
            that the codes and the ids it checked are of the same moment);
            default: a connection of its own.
        """
        table = ROUTE_TABLE
        query = sa.select(table.c.id, table.c.failure_codes).where(
            table.c.failure_codes.is_not(None)
        )
        if conn is not None:
            return {row_id: frozenset(codes) for row_id, codes in conn.execute(query)}
        with self.engine.connect() as own:
            return {row_id: frozenset(codes) for row_id, codes in own.execute(query)}

    # -- syncing -------------------------------------------------------------------

    def ids_for(self, app: Flask, only: Iterable[str] | None = None) -> Mapping[str, int]:
        """Sync with ``app.url_map`` if it changed since the last sync; ``rule -> id``.

        :param only: the ``routes=`` list given to the extension, if any.
        """
        signature = url_map_signature(app)
        if self.is_current(signature):
            return self._synced[1]
        specs = collect(app, only)
        if only is not None:
            missing = sorted(set(only) - set(specs))
            if missing:
                log.warning("flask-server-status: routes=%s name no URL rule of the app", missing)
        return self.sync(specs, signature)

    def sync(self, specs: Mapping[str, RouteSpec], signature: object) -> dict[str, int]:
        """Make sure every rule in ``specs`` has a row and return ``rule -> id``.

        Code-owned fields (endpoint, name, description, position) follow the
        code unless an operator set the name or description. Rows are only
        written when something changed. A rule that cannot be stored (see
        :func:`storable`, or refused by the database) is left out of the
        ids, logged once with its reason and listed in :attr:`refused`.
        The ids hold the app's rules and :data:`~.models.UNMATCHED_RULE` only.
        """
        self._ensure_schema()
        table = ROUTE_TABLE
        wanted = {rule_key(spec.rule): spec for spec in (*specs.values(), _UNMATCHED)}
        refused: dict[str, str] = {}
        for key, spec in list(wanted.items()):
            reason = storable(spec.rule)
            if reason is not None:
                refused[spec.rule] = reason
                del wanted[key]
        with self.engine.begin() as conn:
            existing = {row.rule_hash: row for row in conn.execute(sa.select(table))}
            now = datetime.now(timezone.utc)
            new = [_new_row(spec, now) for key, spec in wanted.items() if key not in existing]
            for key, spec in wanted.items():
                row = existing.get(key)
                if row is not None:
                    self._follow_code(conn, row, spec, now)
        by_key: dict[str, int] = {}
        for _attempt in range(2):
            if new:
                refused.update(self._insert(new))
            # Read the ids in a new transaction: under MySQL's REPEATABLE READ the
            # one above still sees the snapshot of its first read, without the rows
            # another worker inserted meanwhile (our insert skipped them), and
            # counts for rules without an id are not stored.
            with self.engine.connect() as conn:
                query = sa.select(table.c.rule_hash, table.c.id)
                by_key = {key: row_id for key, row_id in conn.execute(query)}
            # A row deleted between our insert and this read (a truncate) is
            # inserted again, once.
            new = [
                _new_row(spec, now)
                for key, spec in wanted.items()
                if key not in by_key and spec.rule not in refused
            ]
            if not new:
                break
        for unstored in new:
            refused[unstored["rule"]] = "its row was deleted as soon as it was inserted, twice"
        ids = {spec.rule: by_key[key] for key, spec in wanted.items() if key in by_key}
        for rule, reason in refused.items():
            if self._refused.get(rule) != reason:
                log.error(
                    "flask-server-status: the rule %r cannot be stored, its requests are"
                    " dropped and counted in `dropped`: %s",
                    rule[:200],
                    reason,
                )
        self._refused = refused
        self._synced = (signature, ids)
        return ids

    @staticmethod
    def _follow_code(conn: sa.Connection, row: Any, spec: RouteSpec, now: datetime) -> None:
        """Bring a row's code-owned fields in line with ``spec``."""
        if spec.rule == UNMATCHED_RULE:
            return
        table = ROUTE_TABLE
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
            # The guard on custom_* keeps an operator's rename made by
            # another process since our read.
            stmt = sa.update(table).where(table.c.id == row.id)
            if "name" in changes:
                stmt = stmt.where(table.c.custom_name == sa.false())
            if "doc" in changes:
                stmt = stmt.where(table.c.custom_doc == sa.false())
            conn.execute(stmt.values(**changes, updated_at=now))

    def _insert(self, rows: list[dict[str, Any]]) -> dict[str, str]:
        """Insert ``rows`` (skipping any another process inserted); return the refused ones.

        All at once first; if the database refuses the batch, row by row, so
        that one rule it cannot hold (a character outside the column's
        charset, say) does not keep every other rule from being counted.
        """
        statement = _insert_ignore(self.engine, ROUTE_TABLE, "rule_hash")
        try:
            with self.engine.begin() as conn:
                conn.execute(statement, rows)
            return {}
        except sa.exc.OperationalError:
            raise  # the database is away or busy: the whole flush waits for it
        except sa.exc.DBAPIError:
            pass
        refused: dict[str, str] = {}
        for row in rows:
            try:
                with self.engine.begin() as conn:
                    conn.execute(statement, [row])
            except sa.exc.OperationalError:
                raise
            except sa.exc.StatementError as exc:  # refused: data, integrity, encoding
                refused[row["rule"]] = _reason(exc)
        return refused


def upgrade_route_table(engine: Engine) -> bool:
    """Bring a route table made by an earlier version up to date; True if it did.

    Columns added since that may be empty (the per-route settings) are added.
    Versions up to 0.x kept the rule in a ``VARCHAR(255)`` with a unique index
    on it. This adds ``rule_hash``, fills it from the rules, indexes it
    uniquely and, on PostgreSQL and MySQL, widens ``rule`` to text and drops
    the unique index on it (SQLite compares text exactly and ignores the
    length, so its old index does no harm and stays). Ids, names and history
    are kept. Every step checks first, so workers starting at once, or a run
    stopped halfway, finish the job rather than fail.
    """
    table = ROUTE_TABLE
    inspector = sa.inspect(engine)
    columns = {column["name"]: column for column in inspector.get_columns(table.name)}
    unique_name = f"uq_{table.name}_rule_hash"
    has_key_index = any(
        index["column_names"] == ["rule_hash"]
        for index in [
            *inspector.get_indexes(table.name),
            *inspector.get_unique_constraints(table.name),
        ]
    )
    # Columns added since, all nullable (the operator's per-route settings):
    # added as they are, empty.
    added = [
        column
        for column in table.columns
        if column.name not in columns and column.nullable and column.name != "rule_hash"
    ]
    quote = engine.dialect.identifier_preparer.quote
    for column in added:
        kind = column.type.compile(dialect=engine.dialect)
        _tolerant(engine, f"ALTER TABLE {quote(table.name)} ADD COLUMN {quote(column.name)} {kind}")
    if "rule_hash" in columns and has_key_index:
        return bool(added)
    dialect = engine.dialect.name
    log.warning(
        "flask-server-status: upgrading %s: rules are now keyed by their SHA-256", table.name
    )
    name = quote(table.name)
    if "rule_hash" not in columns:
        _tolerant(engine, f"ALTER TABLE {name} ADD COLUMN rule_hash VARCHAR(64)")
    with engine.begin() as conn:
        rows = conn.execute(
            sa.select(table.c.id, table.c.rule).where(table.c.rule_hash.is_(None))
        ).all()
        if rows:
            conn.execute(
                sa.update(table)
                .where(table.c.id == sa.bindparam("row_id"))
                # updated_at as it was: the rows' contents did not change.
                .values(rule_hash=sa.bindparam("key"), updated_at=table.c.updated_at),
                [{"row_id": row_id, "key": rule_key(rule)} for row_id, rule in rows],
            )
    if dialect in ("mysql", "mariadb"):
        # A unique index on TEXT needs a prefix length: drop the old one first.
        for index in sa.inspect(engine).get_indexes(table.name):
            if index["column_names"] == ["rule"] and index.get("unique") and index["name"]:
                _tolerant(engine, f"ALTER TABLE {name} DROP INDEX {quote(index['name'])}")
        _tolerant(engine, f"ALTER TABLE {name} MODIFY rule MEDIUMTEXT NOT NULL")
        _tolerant(engine, f"ALTER TABLE {name} MODIFY rule_hash VARCHAR(64) NOT NULL")
    elif dialect == "postgresql":
        for constraint in sa.inspect(engine).get_unique_constraints(table.name):
            if constraint["column_names"] == ["rule"] and constraint["name"]:
                _tolerant(engine, f"ALTER TABLE {name} DROP CONSTRAINT {quote(constraint['name'])}")
        _tolerant(engine, f"ALTER TABLE {name} ALTER COLUMN rule TYPE TEXT")
        _tolerant(engine, f"ALTER TABLE {name} ALTER COLUMN rule_hash SET NOT NULL")
    _tolerant(engine, f"CREATE UNIQUE INDEX {quote(unique_name)} ON {name} (rule_hash)")
    return True


def add_missing_columns(engine: Engine) -> list[str]:
    """Add the route table's nullable columns that an older version did not have.

    The per-route overrides (``failure_codes``, ``latency_threshold_ms``,
    ``slo_target``) came after the table; NULL in them means "the global
    setting", so adding them empty keeps every route as it was. Returns the
    names added (another worker may have added them first: that is fine).
    """
    table = ROUTE_TABLE
    present = {column["name"] for column in sa.inspect(engine).get_columns(table.name)}
    missing = [c for c in table.columns if c.nullable and c.name not in present]
    quote = engine.dialect.identifier_preparer.quote
    for column in missing:
        kind = column.type.compile(dialect=engine.dialect)
        name = f"{quote(table.name)} ADD COLUMN {quote(column.name)}"
        _tolerant(engine, f"ALTER TABLE {name} {kind}")
    return [column.name for column in missing]


def _tolerant(engine: Engine, ddl: str) -> None:
    """Run one DDL statement; an error is fine if another worker did it first."""
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(ddl)
    except sa.exc.DBAPIError as exc:
        log.info("flask-server-status: %s: %s (done by another process?)", ddl, _reason(exc))
