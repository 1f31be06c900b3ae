"""Exact counts across processes: a real gunicorn, several workers, one database.

Each test starts ``gunicorn`` on a free loopback port serving
``tests/apps/gunicorn_app.py``, sends 20,000 requests from 8 client threads
over several routes and status codes (and unknown paths), records what the
clients received, stops gunicorn with SIGTERM (a graceful shutdown: workers
flush at exit) and compares what was stored with what was received, per
route and status code, in the minute rows and in the hour and day roll-ups,
where each code is classified by DESIGN.md's rule: a 404 from a rule with URL
variables (``/items/3``) is neutral by default, a 404 from a rule without
(``/gone``, an unknown path) is a failure.

Every server's journal goes to the test's own temporary folder, never the
source tree's ``tests/apps/instance``.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from helpers import MakeApp, stored, stored_rollups, stored_total

from flask_server_status import routes
from flask_server_status.config import FAILURE, NEUTRAL, SUCCESS
from flask_server_status.models import UNMATCHED_RULE, LogDay, LogHour
from flask_server_status.store import Store

pytestmark = pytest.mark.slow

APPS_DIR = Path(__file__).parent / "apps"
TOTAL_REQUESTS = 20_000
CLIENT_THREADS = 8

#: (method, path, rule it should be counted under, status the app answers)
PLAN: list[tuple[str, str, str, int]] = [
    ("GET", "/", "/", 200),
    ("POST", "/created", "/created", 201),
    ("GET", "/items/2", "/items/<int:item_id>", 200),
    ("GET", "/items/3", "/items/<int:item_id>", 404),  # a 404 on a rule with variables
    ("GET", "/gone", "/gone", 404),  # a 404 on a rule without variables: a failure
    ("GET", "/boom", "/boom", 500),  # raised
    ("GET", "/unavailable", "/unavailable", 503),
    ("GET", "/teapot", "/teapot", 418),  # neutral
    ("GET", "/no/such/page", UNMATCHED_RULE, 404),
    ("GET", "/created", UNMATCHED_RULE, 405),  # method not allowed: no rule matched
    ("GET", "/", "/", 200),  # the index twice as often
]

# Gunicorn serves the app in the workers, not in this process: the expected
# classes are written out here, not taken from the package.
_CLASS = {200: SUCCESS, 201: SUCCESS, 404: FAILURE, 500: FAILURE, 503: FAILURE}
VARIABLE_RULE = "/items/<int:item_id>"


def outcome(rule: str, code: int, variable_rule_404: str = "neutral") -> int:
    """The class of ``code`` answered by ``rule`` (DESIGN.md, "Classification")."""
    if code == 404 and rule == VARIABLE_RULE:
        return FAILURE if variable_rule_404 == "failure" else NEUTRAL
    return _CLASS.get(code, NEUTRAL)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Gunicorn:
    """A gunicorn master serving ``gunicorn_app:app`` on a free loopback port."""

    def __init__(
        self,
        url: str,
        tmp_path: Path,
        args: list[str],
        interval: float,
        config: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.report_dir = tmp_path / "reports"
        self.report_dir.mkdir(exist_ok=True)
        self.journal_dir = tmp_path / "journal"
        self.log_path = tmp_path / "gunicorn.log"
        env = dict(
            os.environ,
            STATUS_TEST_DB_URL=url,
            STATUS_TEST_FLUSH_INTERVAL=str(interval),
            STATUS_TEST_REPORT_DIR=str(self.report_dir),
            # The workers' journal in this test's folder (read by the app as
            # FLASK_STATUS_JOURNAL_DIR), never in the source tree.
            STATUS_TEST_CONFIG_FLASK_STATUS_JOURNAL_DIR=str(self.journal_dir),
        )
        # Further config keys for the app, e.g. FLASK_STATUS_VARIABLE_RULE_404.
        env.update({f"STATUS_TEST_CONFIG_{key}": value for key, value in (config or {}).items()})
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--pythonpath",
                str(APPS_DIR),
                "--graceful-timeout",
                "30",
                "--log-level",
                "warning",
                *args,
                "gunicorn_app:app",
            ],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self._wait_listening()

    def _wait_listening(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"gunicorn exited at start:\n{self.log()}")
            try:
                # A bare connect sends no request, so nothing is counted.
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"gunicorn did not listen within {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def stop(self) -> int:
        """SIGTERM to the master (graceful shutdown); return its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return int(self.proc.returncode)

    def worker_reports(self) -> list[dict[str, Any]]:
        """What each worker wrote at exit, after the extension's exit flush."""
        reports = [json.loads(p.read_text()) for p in self.report_dir.glob("*.json")]
        # With --preload the master loaded the app too; it served nothing.
        return [r for r in reports if r["pid"] != self.proc.pid]


def send_load(port: int, total: int = TOTAL_REQUESTS) -> Counter[tuple[str, int]]:
    """Send ``total`` requests from 8 keep-alive clients; (rule, status received) counts."""
    received: Counter[tuple[str, int]] = Counter()
    errors: list[BaseException] = []
    lock = threading.Lock()

    def client(index: int) -> None:
        mine: Counter[tuple[str, int]] = Counter()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            for n in range(index, total, CLIENT_THREADS):
                method, path, rule, _ = PLAN[n % len(PLAN)]
                # http.client reopens the connection by itself when the server
                # closed it (sync workers close after every response).
                conn.request(method, path, body=b"" if method == "POST" else None)
                response = conn.getresponse()
                response.read()
                mine[(rule, response.status)] += 1
        except BaseException as exc:
            errors.append(exc)
        finally:
            conn.close()
            with lock:
                received.update(mine)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENT_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return received


def expected_received(total: int = TOTAL_REQUESTS) -> Counter[tuple[str, int]]:
    planned: Counter[tuple[str, int]] = Counter()
    for n in range(total):
        _, _, rule, code = PLAN[n % len(PLAN)]
        planned[(rule, code)] += 1
    return planned


def rollups_of(
    received: Counter[tuple[str, int]], variable_rule_404: str = "neutral"
) -> dict[str, tuple[int, int, int, int]]:
    """``rule -> (total, success, failure, neutral)`` of what the clients received."""
    sums: dict[str, list[int]] = {}
    for (rule, code), n in received.items():
        agg = sums.setdefault(rule, [0, 0, 0, 0])
        agg[0] += n
        agg[1 + outcome(rule, code, variable_rule_404)] += n
    return {rule: tuple(agg) for rule, agg in sums.items()}  # type: ignore[misc]


def test_expected_classes_follow_the_design() -> None:
    """The expectations themselves, in concrete numbers, for one round of the plan."""
    one_round = expected_received(len(PLAN))
    assert rollups_of(one_round)["/items/<int:item_id>"] == (2, 1, 0, 1)
    assert rollups_of(one_round, "failure")["/items/<int:item_id>"] == (2, 1, 1, 0)
    assert rollups_of(one_round)["/gone"] == (1, 0, 1, 0)
    assert rollups_of(one_round)[UNMATCHED_RULE] == (2, 0, 1, 1)  # the 404 fails, the 405 not
    assert rollups_of(one_round)["/teapot"] == (1, 0, 0, 1)


def assert_exact(
    engine: sa.Engine, received: Counter[tuple[str, int]], variable_rule_404: str = "neutral"
) -> None:
    assert stored(engine) == received
    assert stored_rollups(engine, LogHour) == rollups_of(received, variable_rule_404)
    assert stored_rollups(engine, LogDay) == rollups_of(received, variable_rule_404)


def run_and_check(
    db_url: str,
    tmp_path: Path,
    args: list[str],
    workers: int,
    interval: float = 2.0,
    config: dict[str, str] | None = None,
) -> tuple[Gunicorn, Counter[tuple[str, int]]]:
    server = Gunicorn(db_url, tmp_path, args, interval, config)
    try:
        started = time.monotonic()
        received = send_load(server.port)
        elapsed = time.monotonic() - started
    finally:
        code = server.stop()
    print(f"{args}: {TOTAL_REQUESTS} requests in {elapsed:.1f}s")
    assert code == 0, server.log()
    # Every request got the answer the app gives: the scenario is what we meant.
    assert received == expected_received()

    reports = server.worker_reports()
    # The exit hook ran in every worker, after the extension's exit flush,
    # which left nothing behind and never failed.
    assert len(reports) == workers, (reports, server.log())
    for report in reports:
        assert report["pending"] == 0, report
        assert report["failures"] == 0, report
        assert report["dropped"] == 0, report

    engine = sa.create_engine(db_url)
    try:
        assert_exact(engine, received, (config or {}).get(VARIABLE_RULE_404_KEY, "neutral"))
    finally:
        engine.dispose()
    return server, received


VARIABLE_RULE_404_KEY = "FLASK_STATUS_VARIABLE_RULE_404"


@pytest.mark.parametrize(
    ("args", "workers", "config"),
    [
        (["--workers", "4", "--worker-class", "sync"], 4, {}),
        # The other setting of the 404 rule: every worker applies it.
        (
            ["--workers", "2", "--threads", "4", "--worker-class", "gthread"],
            2,
            {VARIABLE_RULE_404_KEY: "failure"},
        ),
    ],
    ids=["sync-4", "gthread-2x4-variable-404-failure"],
)
def test_exact_across_workers(
    db_url: str, tmp_path: Path, args: list[str], workers: int, config: dict[str, str]
) -> None:
    server, _ = run_and_check(db_url, tmp_path, args, workers, config=config)
    # The journal lived in this test's folder (the source tree stays clean).
    assert (server.journal_dir / "flask-status-journal").is_dir()


def test_preload_flusher_runs_in_every_worker(db_url: str, tmp_path: Path) -> None:
    """With ``--preload`` the app (and its engine) is made before the fork.

    Each worker must start its own flusher (the counts reach the database
    while gunicorn still runs) and must not share the master's pooled
    database connections.
    """
    server = Gunicorn(
        db_url, tmp_path, ["--preload", "--workers", "4", "--worker-class", "sync"], 1.0
    )
    engine = sa.create_engine(db_url)
    try:
        received = send_load(server.port)
        assert received == expected_received()
        # Background flushes alone, in every worker, bring the totals to exact.
        deadline = time.monotonic() + 20
        waited = time.monotonic()
        while (
            stored_total(engine, missing_tables_ok=True) < TOTAL_REQUESTS
            and time.monotonic() < deadline
        ):
            time.sleep(0.25)
        print(f"preload: stored all {time.monotonic() - waited:.1f}s after the last response")
        assert_exact(engine, received)
        code = server.stop()
        assert code == 0, server.log()
        # The exit flush adds nothing twice.
        assert_exact(engine, received)
        assert len(server.worker_reports()) == 4
    finally:
        server.stop()
        engine.dispose()


@pytest.mark.parametrize(
    ("stop_signal", "args"),
    [
        (signal.SIGTERM, []),
        (signal.SIGINT, []),  # gunicorn's quick shutdown
        (signal.SIGTERM, ["--max-requests", "300"]),  # workers recycled under load
    ],
    ids=["sigterm", "sigint", "max-requests"],
)
def test_exit_flush_writes_everything(
    sqlite_url: str, tmp_path: Path, stop_signal: signal.Signals, args: list[str]
) -> None:
    """With no background flush due, only the exit flushes can write: they must."""
    server = Gunicorn(
        sqlite_url, tmp_path, ["--workers", "2", "--worker-class", "sync", *args], 3600
    )
    engine = sa.create_engine(sqlite_url)
    try:
        received = send_load(server.port, total=2_000)
        assert sum(received.values()) == 2_000
        time.sleep(1.5)  # the flushers drain, but do not write
        if not args:
            assert stored_total(engine, missing_tables_ok=True) == 0
        server.proc.send_signal(stop_signal)
        assert server.stop() == 0, server.log()
        assert stored(engine) == received
        reports = server.worker_reports()
        # Recycled workers (about 2,000 / 300 of them) flushed at exit too.
        assert len(reports) >= (7 if args else 2)
        assert all(r["pending"] == 0 and r["failures"] == 0 for r in reports)
    finally:
        server.stop()
        engine.dispose()


def test_workers_syncing_routes_at_once_all_get_every_id(db_url: str, make_app: MakeApp) -> None:
    """Two workers' first flushes register the routes at the same moment.

    Worker A reads the route table, worker B inserts and commits the rows,
    then A's insert skips them as duplicates. A must still get every id: with
    MySQL's REPEATABLE READ, A's transaction kept seeing its first snapshot,
    so A lacked those ids and silently dropped its counts for them (found by
    the ``--preload`` run above, where the workers' first flushes coincide).
    """
    app, status = make_app(db_url)
    state = status.state(app)
    specs = routes.collect(app, None)
    signature = routes.url_map_signature(app)
    engine_a = sa.create_engine(db_url)
    engine_b = sa.create_engine(db_url)
    store_a = Store(engine_a, state.settings)
    store_b = Store(engine_b, state.settings)
    store_a.ensure_schema()
    store_b.ensure_schema()
    done: list[dict[str, int]] = []

    def b_first(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT") and not done:
            worker_b = threading.Thread(target=lambda: done.append(store_b.sync_routes(specs, 1)))
            worker_b.start()
            worker_b.join(30)

    sa.event.listen(engine_a, "before_cursor_execute", b_first)
    try:
        ids_a = store_a.sync_routes(specs, signature)
    finally:
        sa.event.remove(engine_a, "before_cursor_execute", b_first)
        engine_a.dispose()
        engine_b.dispose()
    assert done, "worker B ran inside worker A's sync"
    assert set(done[0]) == set(specs) | {UNMATCHED_RULE}
    assert ids_a == done[0]
