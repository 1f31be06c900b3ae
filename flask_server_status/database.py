"""The status tables' own engine, with every wait on the database bounded.

A database that is down answers at once ("connection refused"); one that
hangs answers nothing, and a call without a limit waits forever: a page
request until gunicorn kills its worker, the exit flush until the process is
killed. So every call we make has a limit:

* **connect**: the driver's ``connect_timeout`` (:data:`ConfigVars.CONNECT_TIMEOUT`);
* **pool checkout**: ``pool_timeout`` (:data:`ConfigVars.POOL_TIMEOUT`);
* **each statement**, by who is waiting for it: inside a request (the page,
  ``summary.json``, badges, the admin, the API) the *read* limit, a few
  seconds, after which the page answers 503; anywhere else (the background
  flush, the exit flush, the CLI) the longer *write* limit.

The statement limit is enforced twice. The server enforces it itself
(PostgreSQL ``statement_timeout``, MariaDB ``max_statement_time``, MySQL
``max_execution_time``, SQLite's busy timeout), which cancels a slow query
and keeps the connection. But a server that is frozen (``SIGSTOP``, a VM
paused, a network that drops packets silently) runs no timer at all, and
its kernel still acknowledges our packets, so TCP keepalives do not fire
either. A :class:`_Watchdog` thread in this process therefore shuts the
socket of any statement still running :data:`GRACE` seconds after its
limit: the driver sees the connection closed, SQLAlchemy discards it and
the caller gets an ordinary ``OperationalError``.

The tables may live in the host's default database. The host's engine is
never changed: we make our own engine for the same URL, with the host's
engine options plus ours, and register it as the ``flask_status`` bind, so
the host's ``db.session`` (which Flask-Admin uses) still finds our tables.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from time import monotonic
from typing import Any

import sqlalchemy as sa
from flask import Flask, has_request_context
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import event
from sqlalchemy.engine import Engine

from .config import BIND_KEY, OPTIONS_BY_KEY, ConfigVars, Settings

log = logging.getLogger("flask_server_status")

#: Seconds past a statement's limit before the watchdog closes its socket:
#: the server's own timeout, when the server runs, answers first.
GRACE = 1.0

READ, WRITE = "read", "write"

# Keys in a pooled connection's ``info``: the role its session limits are
# set for, and that limit in seconds.
_ROLE = "flask_status_role"
_LIMIT = "flask_status_limit"


@dataclass(frozen=True)
class Timeouts:
    """The limits, in seconds, of our calls to the status database."""

    connect: float
    read: float
    write: float
    pool: float
    #: Names of the keys the app set itself (the others are defaults, which
    #: give way to timeouts the host put in its own ``connect_args``).
    explicit: frozenset[str] = frozenset()

    def for_role(self, role: str) -> float:
        return self.read if role == READ else self.write


def read_timeouts(settings: Settings, config: Mapping[str, Any] | None = None) -> Timeouts:
    """The one place the timeout keys are read.

    :param config: the app's config, to tell the keys it set from defaults.
    """
    keys = (
        ConfigVars.CONNECT_TIMEOUT,
        ConfigVars.READ_TIMEOUT,
        ConfigVars.WRITE_TIMEOUT,
        ConfigVars.POOL_TIMEOUT,
    )
    connect, read, write, pool = (
        float(getattr(settings, OPTIONS_BY_KEY[key].field)) for key in keys
    )
    return Timeouts(
        connect=connect,
        read=read,
        write=write,
        pool=pool,
        explicit=frozenset(key for key in keys if (config or {}).get(key) is not None),
    )


def exit_flush_bound(settings: Settings) -> float:
    """Seconds an exit flush may take at most: the flusher thread's join
    (10 s in :meth:`Buffer.stop`), a connect, and a few bounded statements."""
    timeouts = read_timeouts(settings)
    return 10.0 + timeouts.connect + timeouts.pool + 2 * (timeouts.write + GRACE)


def current_role() -> str:
    """:data:`READ` inside a request (someone is waiting), :data:`WRITE` elsewhere."""
    return READ if has_request_context() else WRITE


# -- the engine ------------------------------------------------------------------------


def status_engine(app: Flask, db: SQLAlchemy, settings: Settings) -> Engine:
    """Our engine for the ``flask_status`` bind, registered in ``db.engines``.

    It points at the ``flask_status`` bind's URL when the app configured one,
    else at the default database's. An in-memory SQLite database exists only
    inside its engine, so there the engine is shared, not copied.
    """
    timeouts = read_timeouts(settings, app.config)
    with app.app_context():
        engines: Any = db.engines  # a dict per app; typed as a read-only Mapping
        if BIND_KEY in engines:
            source = engines[BIND_KEY]
        elif None in engines:
            source = engines[None]
        else:
            raise RuntimeError(
                "flask-server-status needs SQLALCHEMY_DATABASE_URI or"
                f" SQLALCHEMY_BINDS[{BIND_KEY!r}] to be set."
            )
        if _in_memory(source.url):
            engines[BIND_KEY] = source
            return source  # type: ignore[no-any-return]
        options = _host_options(app, db, BIND_KEY if BIND_KEY in engines else None)
        engine = _create_engine(source.url, options, timeouts)
        engines[BIND_KEY] = engine
        return engine


def _in_memory(url: sa.URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def _host_options(app: Flask, db: SQLAlchemy, bind_key: str | None) -> dict[str, Any]:
    """The engine options Flask-SQLAlchemy used for that bind, as far as the config says."""
    options: dict[str, Any] = dict(getattr(db, "_engine_options", None) or {})
    options.update(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
    if bind_key is not None:
        bind = (app.config.get("SQLALCHEMY_BINDS") or {}).get(bind_key)
        if isinstance(bind, Mapping):
            options.update({k: v for k, v in bind.items() if k != "url"})
    echo = bool(app.config.get("SQLALCHEMY_ECHO", False))
    options.setdefault("echo", echo)
    options.setdefault("echo_pool", echo)
    options.pop("url", None)
    return options


def _create_engine(url: sa.URL, options: dict[str, Any], timeouts: Timeouts) -> Engine:
    backend = url.get_backend_name()
    connect_args = dict(options.get("connect_args") or {})
    explicit = timeouts.explicit

    def put(name: str, value: Any, key: str) -> None:
        # A timeout the host gave its own engine stays, unless our key is set.
        if key in explicit or name not in connect_args:
            connect_args[name] = value

    server_side = True
    if backend == "postgresql":
        put("connect_timeout", max(2, math.ceil(timeouts.connect)), ConfigVars.CONNECT_TIMEOUT)
        # Keepalives notice a peer that vanished (a host gone, a cable cut);
        # a frozen server is the watchdog's.
        for name, value in (
            ("keepalives", 1),
            ("keepalives_idle", 30),
            ("keepalives_interval", 5),
            ("keepalives_count", 3),
        ):
            connect_args.setdefault(name, value)
    elif backend in ("mysql", "mariadb"):
        put("connect_timeout", max(1, math.ceil(timeouts.connect)), ConfigVars.CONNECT_TIMEOUT)
        # The drivers' own socket limits are a backstop for the longest wait
        # we allow; the per-role limits are the server's and the watchdog's.
        backstop = math.ceil(max(timeouts.read, timeouts.write) + 2 * GRACE)
        put("read_timeout", backstop, ConfigVars.WRITE_TIMEOUT)
        put("write_timeout", backstop, ConfigVars.WRITE_TIMEOUT)
        # As Flask-SQLAlchemy does: MySQL drops connections idle for 8 hours.
        options.setdefault("pool_recycle", 7200)
    elif backend == "sqlite":
        ours = explicit & {ConfigVars.READ_TIMEOUT, ConfigVars.WRITE_TIMEOUT}
        # The host chose the busy timeout for its engine: keep it for both roles.
        server_side = "timeout" not in connect_args or bool(ours)
    options["connect_args"] = connect_args
    if ConfigVars.POOL_TIMEOUT in explicit or "pool_timeout" not in options:
        options["pool_timeout"] = timeouts.pool
    try:
        engine = sa.create_engine(url, **options)
    except TypeError:
        # A pool class without a checkout wait (NullPool, StaticPool).
        options.pop("pool_timeout")
        engine = sa.create_engine(url, **options)
    _bound(engine, timeouts, server_side)
    return engine


# -- the limits on each connection ------------------------------------------------------


def _session_limits(engine: Engine, seconds: float) -> list[str]:
    """Statements that make the server itself stop a statement after ``seconds``."""
    backend = engine.dialect.name
    if backend == "postgresql":
        return [f"SET statement_timeout = {max(1, round(seconds * 1000))}"]
    if backend in ("mysql", "mariadb"):
        if getattr(engine.dialect, "is_mariadb", False):
            return [f"SET SESSION max_statement_time = {seconds:.3f}"]
        # MySQL limits SELECTs only; lock waits are bounded by InnoDB.
        return [f"SET SESSION max_execution_time = {max(1, round(seconds * 1000))}"]
    if backend == "sqlite":
        return [f"PRAGMA busy_timeout = {max(0, round(seconds * 1000))}"]
    return []


def _bound(engine: Engine, timeouts: Timeouts, server_side: bool) -> None:
    """Put the per-role limits on every connection ``engine`` hands out."""
    watched = engine.dialect.name in ("postgresql", "mysql", "mariadb")
    _limit_each_checkout(engine, timeouts, server_side, watched)
    if watched:
        _watch_each_statement(engine, timeouts)


def _limit_each_checkout(
    engine: Engine, timeouts: Timeouts, server_side: bool, watched: bool
) -> None:
    """Set the server's own limit for the role of whoever checks a connection out."""

    @event.listens_for(engine, "checkout")
    def set_limits(dbapi_conn: Any, record: Any, proxy: Any) -> None:
        role = current_role()
        seconds = timeouts.for_role(role)
        if record.info.get(_ROLE) == role:
            return
        statements = _session_limits(engine, seconds) if server_side else []
        try:
            with WATCHDOG.guard(dbapi_conn, seconds + GRACE) if watched else _nothing():
                cursor = dbapi_conn.cursor()
                try:
                    for statement in statements:
                        cursor.execute(statement)
                finally:
                    cursor.close()
                if statements and engine.dialect.name != "sqlite":
                    # A SET inside a transaction that is later rolled back is
                    # undone (PostgreSQL); committed, it holds for the session.
                    dbapi_conn.commit()
        except engine.dialect.loaded_dbapi.Error as exc:
            # Raw driver errors from here would escape the callers' handlers
            # for SQLAlchemy errors (the page's 503); the pool discards the
            # connection.
            raise sa.exc.OperationalError("; ".join(statements), None, exc) from exc
        record.info[_ROLE] = role
        record.info[_LIMIT] = seconds


def _watch_each_statement(engine: Engine, timeouts: Timeouts) -> None:
    """Have the watchdog close a connection whose statement outlives its limit."""

    def limit(conn: sa.Connection) -> float:
        return float(conn.info.get(_LIMIT) or timeouts.write) + GRACE

    @event.listens_for(engine, "before_cursor_execute")
    def arm(conn: sa.Connection, cursor: Any, *args: Any) -> None:
        WATCHDOG.arm(conn.connection.dbapi_connection, limit(conn))

    @event.listens_for(engine, "after_cursor_execute")
    def disarm(conn: sa.Connection, cursor: Any, *args: Any) -> None:
        WATCHDOG.disarm(conn.connection.dbapi_connection)

    @event.listens_for(engine, "handle_error")
    def disarm_on_error(context: sa.engine.ExceptionContext) -> None:
        if context.connection is not None and not context.connection.invalidated:
            with contextlib.suppress(Exception):
                WATCHDOG.disarm(context.connection.connection.dbapi_connection)

    _watch_transaction_ends(engine, timeouts, limit)


def _watch_transaction_ends(
    engine: Engine, timeouts: Timeouts, limit: Callable[[sa.Connection], float]
) -> None:
    """COMMIT and ROLLBACK wait on the server too; they have no "after" event,
    so their limit is lifted when the connection goes back to the pool."""

    @event.listens_for(engine, "commit")
    def arm_commit(conn: sa.Connection) -> None:
        WATCHDOG.arm(conn.connection.dbapi_connection, limit(conn))

    @event.listens_for(engine, "rollback")
    def arm_rollback(conn: sa.Connection) -> None:
        if not conn.invalidated:
            WATCHDOG.arm(conn.connection.dbapi_connection, limit(conn))

    @event.listens_for(engine, "reset")
    def arm_reset(dbapi_conn: Any, record: Any, state: Any) -> None:
        WATCHDOG.arm(dbapi_conn, float(record.info.get(_LIMIT) or timeouts.write) + GRACE)

    @event.listens_for(engine, "checkin")
    def lift(dbapi_conn: Any, record: Any) -> None:
        if dbapi_conn is not None:
            WATCHDOG.disarm(dbapi_conn)

    @event.listens_for(engine, "close")
    def lift_on_close(dbapi_conn: Any, record: Any) -> None:
        WATCHDOG.disarm(dbapi_conn)


@contextlib.contextmanager
def _nothing() -> Iterator[None]:
    yield


# -- the watchdog -----------------------------------------------------------------------


def _sever(dbapi_conn: Any) -> bool:
    """Shut the socket under a DB-API connection, so a read blocked on it returns.

    ``shutdown`` (not ``close``) wakes a thread blocked on the socket and
    leaves the descriptor to its owner, so it cannot be reused under it.
    """
    sock = getattr(dbapi_conn, "_sock", None)  # PyMySQL
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
            return True
        return False
    try:
        fd = dbapi_conn.fileno()  # psycopg 3, psycopg2
    except Exception:  # closed meanwhile, or a driver without one
        return False
    if not isinstance(fd, int) or fd < 0:
        return False
    with contextlib.suppress(OSError), socket.socket(fileno=os.dup(fd)) as dup:
        dup.shutdown(socket.SHUT_RDWR)
        return True
    return False


class _Watchdog:
    """One thread per process that severs connections whose deadline passed.

    The request and flush threads only record a deadline (a dict write under
    a lock); the thread wakes at the earliest one.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Start afresh: in a forked child, the thread is gone and its lock may be held."""
        self._cond = threading.Condition(threading.Lock())
        #: id(connection) -> (deadline, connection, seconds allowed)
        self._armed: dict[int, tuple[float, Any, float]] = {}
        self._wake_at = float("inf")
        self._thread: threading.Thread | None = None
        #: Connections severed in this process, for tests and logs.
        self.severed = 0

    def arm(self, dbapi_conn: Any, seconds: float) -> None:
        deadline = monotonic() + seconds
        with self._cond:
            self._armed[id(dbapi_conn)] = (deadline, dbapi_conn, seconds)
            if self._thread is None:
                self._start()
            if deadline < self._wake_at:
                self._cond.notify()

    def disarm(self, dbapi_conn: Any) -> None:
        with self._cond:
            self._armed.pop(id(dbapi_conn), None)

    @contextlib.contextmanager
    def guard(self, dbapi_conn: Any, seconds: float) -> Iterator[None]:
        self.arm(dbapi_conn, seconds)
        try:
            yield
        finally:
            self.disarm(dbapi_conn)

    def _start(self) -> None:
        thread = threading.Thread(target=self._run, name="flask-server-status-watchdog")
        thread.daemon = True
        self._thread = thread
        try:
            thread.start()
        except RuntimeError as exc:  # e.g. at interpreter exit; the drivers' limits remain
            log.warning("flask-server-status: cannot start the database watchdog: %s", exc)

    def _run(self) -> None:
        while True:
            with self._cond:
                now = monotonic()
                due = [(k, v) for k, v in self._armed.items() if v[0] <= now]
                for key, _ in due:
                    del self._armed[key]
                if not due:
                    self._wake_at = min((v[0] for v in self._armed.values()), default=now + 60)
                    self._cond.wait(self._wake_at - now)
                    self._wake_at = float("inf")
                    continue
            for _, (_, dbapi_conn, seconds) in due:
                if _sever(dbapi_conn):
                    self.severed += 1
                    log.warning(
                        "flask-server-status: the status database did not answer within"
                        " %.1f s; closed the connection",
                        seconds,
                    )


WATCHDOG = _Watchdog()

if hasattr(os, "register_at_fork"):
    # The thread does not survive a fork, and its lock may have been held.
    os.register_at_fork(after_in_child=WATCHDOG.reset)


# -- what a log line says about a database error ------------------------------------------


def describe_error(exc: BaseException) -> str:
    """One line naming a failure: the class and the driver's first line.

    ``OperationalError: connection refused``, never the statement or its
    parameters, which SQLAlchemy's own message carries (and which may hold
    what users typed).
    """
    orig = exc.orig if isinstance(exc, sa.exc.StatementError) else None
    text = str(orig if orig is not None else exc)
    # A StatementError without a driver error appends the statement itself.
    text = text.split("[SQL:", 1)[0]
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if len(first) > 300:
        first = first[:297] + "..."
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


class _ConciseDatabaseErrors(logging.Filter):
    """Put :func:`describe_error` in place of SQLAlchemy errors in our log lines.

    Every warning of ours formats its exception with ``%s``; for a
    SQLAlchemy error that prints the whole statement and its parameters.
    Filtering the logger keeps every call site, present and future, to one
    line.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and any(isinstance(a, sa.exc.StatementError) for a in args):
            record.args = tuple(
                describe_error(a) if isinstance(a, sa.exc.StatementError) else a for a in args
            )
        return True


log.addFilter(_ConciseDatabaseErrors())
