"""The database down, unreachable, stalled or locked while requests are served.

Requests never touch the database, so they must all succeed, quickly, while
it is gone; the flushes fail and keep their counts; once the database is
back the next flush writes them and the totals are exact.

PostgreSQL and MariaDB are cut off by a TCP proxy the test controls (and
PostgreSQL once more by stopping a throwaway cluster, when its binaries are
installed); SQLite by another connection holding ``BEGIN EXCLUSIVE``.
"""

from __future__ import annotations

import contextlib
import glob
import http.client
import logging
import os
import pwd
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from flask_server_status import get_state
from flask_server_status.models import UNMATCHED_RULE, Log, LogDay, Route

pytestmark = pytest.mark.slow

#: A request that waited on the database would take at least a connect or
#: lock timeout (1-2 s here); a request served from memory takes milliseconds.
MAX_REQUEST_SECONDS = 0.5

#: (path, rule, status)
MIX = [
    ("/", "/", 200),
    ("/code/201", "/code/<int:code>", 201),
    ("/code/503", "/code/<int:code>", 503),
    ("/boom", "/boom", 500),
    ("/items/7", "/items/<int:item_id>", 200),
    ("/missing", UNMATCHED_RULE, 404),
]


class TcpProxy:
    """Forwards a loopback port to a database server; can be cut or stalled.

    ``cut()`` closes the listener and every open connection, as a server
    that died would; ``stall()`` keeps connections open but forwards
    nothing, as a server that hangs would; ``restore()`` undoes either.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._flowing = threading.Event()
        self._flowing.set()
        self.restore()

    def _listen(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # closed by cut()
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                self._flowing.wait()
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        if self._listener is not None:
            # close() alone leaves a thread blocked in accept() listening on
            # Linux; shutdown() wakes it and stops new connections at once.
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        self._flowing.set()

    def stall(self) -> None:
        self._flowing.clear()

    def restore(self) -> None:
        self._flowing.set()
        if self._listener is None:
            self._listen()

    def close(self) -> None:
        self.cut()


def serve(base_url: str, n: int, offset: int = 0) -> tuple[Counter[tuple[str, int]], float]:
    """Send ``n`` requests of :data:`MIX`; (rule, status received) counts and the slowest."""
    host, port = base_url.removeprefix("http://").split(":")
    received: Counter[tuple[str, int]] = Counter()
    slowest = 0.0
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        for i in range(offset, offset + n):
            path, rule, expected = MIX[i % len(MIX)]
            started = time.perf_counter()
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            slowest = max(slowest, time.perf_counter() - started)
            assert response.status == expected, (path, response.status)
            received[(rule, response.status)] += 1
    finally:
        conn.close()
    return received, slowest


def stored(url: str) -> Counter[tuple[str, int]]:
    """(rule, status) -> count read from the database directly, not through the proxy."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(Route.rule, Log.status, sa.func.sum(Log.count))
                .join(Route, Route.id == Log.route_id)
                .group_by(Route.rule, Log.status)
            )
            return Counter({(rule, status): int(n) for rule, status, n in rows})
    except sa.exc.DBAPIError:  # the tables are not there yet
        return Counter()
    finally:
        engine.dispose()


def day_totals(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.sum(LogDay.total))).scalar() or 0)
    finally:
        engine.dispose()


def wait_for(predicate: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def through(url: str, port: int) -> str:
    return (
        sa.engine.make_url(url)
        .set(host="127.0.0.1", port=port)
        .render_as_string(hide_password=False)
    )


def engine_options(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        # The lock must fail the flush quickly, not after sqlite's 5 s default.
        return {"connect_args": {"timeout": 0.2}}
    return {"connect_args": {"connect_timeout": 2}}


@pytest.fixture
def proxy_for() -> Iterator[Callable[[str], TcpProxy]]:
    proxies: list[TcpProxy] = []

    def make(url: str) -> TcpProxy:
        parsed = sa.engine.make_url(url)
        proxy = TcpProxy(parsed.host or "127.0.0.1", parsed.port or 0)
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        proxy.close()


def outage_cycle(
    app: Any,
    direct_url: str,
    server_url: str,
    down: Callable[[], None],
    up: Callable[[], None],
    readable_while_down: bool = True,
) -> None:
    """Serve, take the database away, serve, bring it back: exact totals."""
    buffer = get_state(app).buffer

    before, _ = serve(server_url, 40)
    assert wait_for(lambda: stored(direct_url) == before), "background flush while up"
    assert buffer.pending() == 0

    down()
    failures = buffer.failures
    during, slowest = serve(server_url, 300, offset=40)
    # Every request was answered from memory, none waited on the database.
    print(f"database down: slowest of 300 requests {slowest * 1000:.1f} ms")
    assert slowest < MAX_REQUEST_SECONDS, f"slowest request {slowest:.3f}s"
    # The background flusher tries (every 0.5 s), fails and keeps everything.
    assert wait_for(lambda: buffer.failures >= failures + 2), "flushes kept failing"
    assert buffer.pending() == 300
    with pytest.raises(sa.exc.DBAPIError):
        get_state(app).buffer.flush()
    assert buffer.pending() == 300
    assert buffer.last_error is not None
    if readable_while_down:  # nothing of the failed flushes got in
        assert stored(direct_url) == before

    up()
    expected = before + during
    assert wait_for(lambda: stored(direct_url) == expected), "written once back"
    assert buffer.pending() == 0
    assert buffer.dropped == 0
    assert day_totals(direct_url) == 340
    # Nothing written twice: a later flush adds nothing.
    assert get_state(app).buffer.flush() == 0
    assert stored(direct_url) == expected


@pytest.mark.parametrize("db_url", ["postgresql", "mariadb"], indirect=True)
def test_server_unreachable(db_url, make_app, live_server, proxy_for):
    proxy = proxy_for(db_url)
    url = through(db_url, proxy.port)
    app, _ = make_app(
        url,
        config={
            "FLASK_STATUS_FLUSH_INTERVAL": 0.5,
            "SQLALCHEMY_ENGINE_OPTIONS": engine_options(url),
        },
    )
    server = live_server(app)
    outage_cycle(app, db_url, server.url, proxy.cut, proxy.restore)


@pytest.mark.parametrize("db_url", ["postgresql", "mariadb"], indirect=True)
def test_server_stalled(db_url, make_app, live_server, proxy_for):
    """A database that hangs mid-flush stalls the flusher, never a request."""
    proxy = proxy_for(db_url)
    url = through(db_url, proxy.port)
    app, status = make_app(url, config={"SQLALCHEMY_ENGINE_OPTIONS": engine_options(url)})
    server = live_server(app)
    before, _ = serve(server.url, 30)
    assert status.flush(app) == 30

    during, _ = serve(server.url, 30, offset=30)
    proxy.stall()
    flusher = threading.Thread(target=status.flush, args=(app,))
    flusher.start()
    time.sleep(0.5)
    assert flusher.is_alive(), "the flush waits on the stalled database"
    later, slowest = serve(server.url, 120, offset=60)
    print(f"database stalled: slowest of 120 requests {slowest * 1000:.1f} ms")
    assert slowest < MAX_REQUEST_SECONDS, f"slowest request {slowest:.3f}s"
    proxy.restore()
    flusher.join(20)
    assert not flusher.is_alive()
    status.flush(app)
    assert stored(db_url) == before + during + later


def test_sqlite_locked(sqlite_url, make_app, live_server, tmp_path):
    app, _status = make_app(
        sqlite_url,
        config={
            "FLASK_STATUS_FLUSH_INTERVAL": 0.5,
            "SQLALCHEMY_ENGINE_OPTIONS": engine_options(sqlite_url),
        },
    )
    server = live_server(app)
    holder = sqlite3.connect(str(tmp_path / "status.db"), isolation_level=None, timeout=5)

    def lock() -> None:
        holder.execute("BEGIN EXCLUSIVE")

    def unlock() -> None:
        holder.execute("COMMIT")

    try:
        outage_cycle(app, sqlite_url, server.url, lock, unlock)
    finally:
        if holder.in_transaction:
            holder.execute("ROLLBACK")
        holder.close()


@pytest.mark.parametrize("db_url", ["postgresql", "mariadb"], indirect=True)
def test_down_at_start(db_url, make_app, live_server, proxy_for, caplog):
    """The database is down when the app starts: the app starts and serves anyway."""
    proxy = proxy_for(db_url)
    proxy.cut()
    url = through(db_url, proxy.port)
    with caplog.at_level(logging.WARNING, logger="flask_server_status"):
        app, status = make_app(url, config={"SQLALCHEMY_ENGINE_OPTIONS": engine_options(url)})
    assert "could not create the status tables yet" in caplog.text
    server = live_server(app)
    received, slowest = serve(server.url, 60)
    assert slowest < MAX_REQUEST_SECONDS
    with pytest.raises(sa.exc.DBAPIError):
        status.flush(app)
    assert get_state(app).buffer.pending() == 60

    proxy.restore()
    assert status.flush(app) == 60  # creates the tables, then writes
    assert stored(db_url) == received


def test_sqlite_locked_at_start(sqlite_url, make_app, live_server, tmp_path, caplog):
    """A SQLite file locked while the app starts: tables come with the first good flush."""
    holder = sqlite3.connect(str(tmp_path / "status.db"), isolation_level=None, timeout=5)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with caplog.at_level(logging.WARNING, logger="flask_server_status"):
            app, status = make_app(
                sqlite_url, config={"SQLALCHEMY_ENGINE_OPTIONS": engine_options(sqlite_url)}
            )
        assert "could not create the status tables yet" in caplog.text
        server = live_server(app)
        received, slowest = serve(server.url, 60)
        assert slowest < MAX_REQUEST_SECONDS
        with pytest.raises(sa.exc.DBAPIError):
            status.flush(app)
        assert get_state(app).buffer.pending() == 60
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert status.flush(app) == 60
    assert stored(sqlite_url) == received


# -- a real PostgreSQL server stopped and started again --------------------------------

PG_BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))


def _as_postgres(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
    if os.geteuid() == 0:
        args = ["runuser", "-u", "postgres", "--", *args]
    return subprocess.run(args, check=True, capture_output=True, timeout=60, **kwargs)


@pytest.fixture
def pg_cluster() -> Iterator[dict[str, Any]]:
    """A throwaway PostgreSQL cluster on a free port: ``url``, ``stop()``, ``start()``."""
    missing = None
    if not PG_BIN:
        missing = "PostgreSQL server binaries (/usr/lib/postgresql/*/bin) not installed"
    elif os.geteuid() == 0 and not shutil.which("runuser"):
        missing = "running as root without runuser"
    else:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            if os.geteuid() == 0:
                missing = "no postgres OS user to run the cluster as"
    if missing:
        if os.environ.get("FLASK_STATUS_REQUIRE_DATABASES") == "1":
            pytest.fail(missing + "; FLASK_STATUS_REQUIRE_DATABASES=1 forbids skipping")
        pytest.skip(missing)
    bin_dir = PG_BIN[-1]
    # Not under pytest's tmp_path: its parents are private to root, and the
    # cluster runs as the postgres user.
    base = Path(tempfile.mkdtemp(prefix="flask_status_pg_"))
    data = base / "data"
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _as_postgres([f"{bin_dir}/initdb", "-D", str(data), "-A", "trust", "-U", "postgres"])
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"

    def start() -> None:
        _as_postgres(
            [
                f"{bin_dir}/pg_ctl",
                "-D",
                str(data),
                "-o",
                options,
                "-l",
                f"{base}/log",
                "-w",
                "start",
            ]
        )

    def stop() -> None:
        _as_postgres([f"{bin_dir}/pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop"])

    start()
    try:
        yield {
            "url": f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres",
            "start": start,
            "stop": stop,
        }
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            stop()
        shutil.rmtree(base, ignore_errors=True)


def test_postgres_stopped_and_restarted(pg_cluster, make_app, live_server):
    url = pg_cluster["url"]
    app, _ = make_app(
        url,
        config={
            "FLASK_STATUS_FLUSH_INTERVAL": 0.5,
            "SQLALCHEMY_ENGINE_OPTIONS": engine_options(url),
        },
    )
    server = live_server(app)
    outage_cycle(app, url, server.url, pg_cluster["stop"], pg_cluster["start"], False)
