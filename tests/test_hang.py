"""A database that hangs, not one that is down, under a real gunicorn.

A server that is down refuses connections at once; one that is frozen
(``SIGSTOP``, a paused VM) accepts them and answers nothing, and no timer of
its own runs, not even ``statement_timeout``. Without client-side limits a
page read waits until gunicorn kills the worker (``--timeout``), and counts
die with it.

The test freezes a throwaway PostgreSQL cluster (never the shared server)
under three sync workers with steady traffic, thaws it, and checks that
every ``/status`` and ``summary.json`` answered (503 while frozen) before
gunicorn's worker timeout, that no worker was killed, and that every
request sent is stored once the database is back. The worker timeout is 15 s
here (gunicorn's default is 30): still well above the read limit (5 s plus
the watchdog's 1 s), and it halves the freeze the test must wait out.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from helpers import stored
from test_gunicorn import Gunicorn
from test_outage import pg_cluster  # noqa: F401 - pg_cluster is a fixture

pytestmark = pytest.mark.slow

#: gunicorn's ``--timeout`` in this test: a worker silent that long is killed.
WORKER_TIMEOUT = 15
#: Seconds the cluster stays frozen: longer than the worker timeout, so a
#: request that waited on it would have its worker killed.
FREEZE_SECONDS = 20
#: (path, rule) of the steady traffic.
TRAFFIC = [("/", "/"), ("/items/2", "/items/<int:item_id>"), ("/teapot", "/teapot")]


class Traffic:
    """Client threads sending :data:`TRAFFIC` until stopped; what they received."""

    def __init__(self, port: int, clients: int = 2, pause: float = 0.01) -> None:
        self.port = port
        self.pause = pause
        self.received: Counter[tuple[str, int]] = Counter()
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._client) for _ in range(clients)]
        for thread in self._threads:
            thread.start()

    def _client(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=WORKER_TIMEOUT)
        n = 0
        try:
            while not self._stop.is_set():
                path, rule = TRAFFIC[n % len(TRAFFIC)]
                n += 1
                conn.request("GET", path)
                response = conn.getresponse()
                response.read()
                with self._lock:
                    self.received[(rule, response.status)] += 1
                time.sleep(self.pause)
        except BaseException as exc:  # a timeout here is a finding, not noise
            self.errors.append(exc)
        finally:
            conn.close()

    def stop(self) -> Counter[tuple[str, int]]:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)
        return self.received


class Poller:
    """Reads the page and summary.json in turn; records (started, seconds, status)."""

    PATHS = ("/status", "/status/summary.json")

    def __init__(self, port: int) -> None:
        self.port = port
        self.answers: list[tuple[float, float, str, int]] = []
        self.errors: list[tuple[str, BaseException]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)
        self._thread.start()

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            path = self.PATHS[n % len(self.PATHS)]
            n += 1
            started = time.monotonic()
            # The client gives up where gunicorn would kill the worker.
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=WORKER_TIMEOUT)
            try:
                conn.request("GET", path)
                response = conn.getresponse()
                response.read()
                self.answers.append((started, time.monotonic() - started, path, response.status))
            except (OSError, http.client.HTTPException) as exc:
                self.errors.append((path, exc))
            finally:
                conn.close()
            self._stop.wait(0.5)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)


def wait_until(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.25)
    return bool(predicate())


def test_frozen_postgres_under_gunicorn(pg_cluster: dict[str, Any], tmp_path: Path) -> None:  # noqa: F811
    url = pg_cluster["url"]
    server = Gunicorn(
        url,
        tmp_path,
        [
            "--workers",
            "3",
            "--worker-class",
            "sync",
            "--timeout",
            str(WORKER_TIMEOUT),
            "--env",
            # Keep the write side short so the test stays short; the read
            # side keeps its default (5 s), the figure the report gives.
            "STATUS_TEST_CONFIG_FLASK_STATUS_WRITE_TIMEOUT=10",
        ],
        interval=1.0,  # the journal goes to tmp_path/journal (Gunicorn sets it)
    )
    poller: Poller | None = None
    traffic: Traffic | None = None
    try:
        traffic = Traffic(server.port)
        poller = Poller(server.port)
        # Every worker booted, the tables exist, flushes and page reads work.
        assert wait_until(
            lambda: (
                sum(stored(url, missing_tables_ok=True).values()) > 0
                and any(status == 200 for *_, status in poller.answers)
            ),
            60,
        ), (poller.answers, server.log())
        time.sleep(2)
        frozen_at = time.monotonic()
        pg_cluster["freeze"]()
        try:
            time.sleep(FREEZE_SECONDS)
        finally:
            thawed_at = time.monotonic()
            pg_cluster["thaw"]()
        time.sleep(5)  # traffic and reads once it is back
        poller.stop()
        sent = traffic.stop()
        assert not traffic.errors, traffic.errors
        total = sum(sent.values())

        # Every request sent is stored once the database is back: the
        # background flushes write what the frozen ones kept.
        back = wait_until(lambda: stored(url, missing_tables_ok=True) == sent, 45)
        assert back, (stored(url), sent)
    finally:
        if poller is not None:
            poller.stop()
        if traffic is not None:
            traffic.stop()
        code = server.stop()
    log = server.log_path.read_text(errors="replace")

    # Reads that overlapped the freeze, whenever they started.
    during = [a for a in poller.answers if a[0] < thawed_at and a[0] + a[1] > frozen_at]
    longest = max((seconds for _, seconds, _, _ in during), default=0.0)
    print(
        f"frozen {FREEZE_SECONDS}s under 3 sync workers: sent {total}, stored"
        f" {sum(stored(url).values())}; {len(during)} page reads while frozen,"
        f" the longest {longest:.1f}s; statuses {Counter(a[3] for a in during)}"
    )
    for started, seconds, path, status in during:
        print(f"  {started - frozen_at:+6.1f}s {path}: {status} after {seconds:.1f}s")
    # Every read answered, none hung until the client gave up (the worker timeout).
    assert not poller.errors, poller.errors
    assert during, "the page was read while the database was frozen"
    # 503 while frozen (a 200 from the page's own short cache is fine too).
    assert {status for *_, status in during} <= {200, 503}
    assert 503 in {status for *_, status in during}
    assert poller.answers[-1][3] == 200, "the page is back once the database is"
    # No worker was killed for our sake, and gunicorn stopped cleanly.
    assert "WORKER TIMEOUT" not in log, log[-3000:]
    assert code == 0, log[-3000:]
    # The exit flushes, after the thaw, lost and doubled nothing.
    assert stored(url) == sent
    assert all(r["pending"] == 0 for r in server.worker_reports()), server.worker_reports()
