"""The local journal: counts a process could not write are written once by the next one.

Real processes (``tests/apps/journal_child.py``) on real databases. A
database that is "down" is one the test controls: PostgreSQL and MariaDB
are reached through a TCP proxy of the test's own, which it stops; SQLite is
locked by a transaction the test holds open. The shared servers are never
touched.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from helpers import MakeApp, slot, stored
from test_outage import TcpProxy

from flask_server_status import get_state
from flask_server_status.buffer import merge
from flask_server_status.journal import Journal, decode
from flask_server_status.models import JOURNAL_TABLE

CHILD = Path(__file__).parent / "apps" / "journal_child.py"


# -- helpers ----------------------------------------------------------------------------


class Outage:
    """Takes the test's database away and brings it back, for one backend."""

    def __init__(self, url: str) -> None:
        self.real_url = url
        parsed = sa.engine.make_url(url)
        self.proxy: TcpProxy | None = None
        self._holder: sqlite3.Connection | None = None
        if parsed.get_backend_name() == "sqlite":
            self.url = url
            self.path = str(parsed.database)
        else:
            self.proxy = TcpProxy(parsed.host or "127.0.0.1", int(parsed.port or 0))
            self.url = parsed.set(port=self.proxy.port).render_as_string(hide_password=False)

    def down(self) -> None:
        if self.proxy is not None:
            self.proxy.cut()
        else:
            self._holder = sqlite3.connect(self.path, isolation_level=None, timeout=10)
            self._holder.execute("BEGIN EXCLUSIVE")

    def up(self) -> None:
        if self.proxy is not None:
            self.proxy.restore()
        elif self._holder is not None:
            self._holder.execute("ROLLBACK")
            self._holder.close()
            self._holder = None

    def close(self) -> None:
        if self.proxy is not None:
            self.proxy.close()
        if self._holder is not None:
            self.up()


@pytest.fixture
def outage(db_url: str) -> Iterator[Outage]:
    o = Outage(db_url)
    yield o
    o.close()


def child(
    mode: str, url: str, instance: Path, *args: str, stdin: bool = False
) -> subprocess.Popen[str]:
    env = dict(os.environ, STATUS_TEST_DB_URL=url, STATUS_TEST_INSTANCE=str(instance))
    return subprocess.Popen(
        [sys.executable, str(CHILD), mode, *args],
        env=env,
        stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_child(mode: str, url: str, instance: Path, *args: str) -> dict[str, Any]:
    proc = child(mode, url, instance, *args)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return dict(json.loads(out.strip().splitlines()[-1]))


def expected(n: int) -> dict[tuple[str, int], int]:
    """What ``journal_child.answer(n)`` sends."""
    fails = n // 3
    out = {("/", 200): n - fails}
    if fails:
        out[("/fail", 500)] = fails
    return out


def segments(instance: Path) -> list[Path]:
    return sorted((instance / "flask-status-journal").glob("*/*.seg"))


def add(*parts: dict[tuple[str, int], int]) -> dict[tuple[str, int], int]:
    total: dict[tuple[str, int], int] = {}
    for part in parts:
        for key, value in part.items():
            total[key] = total.get(key, 0) + value
    return total


# -- in one process ----------------------------------------------------------------------


def test_a_successful_flush_leaves_nothing_to_replay(
    db_url: str, make_app: MakeApp, tmp_path: Path
) -> None:
    app, status = make_app(db_url)
    client = app.test_client()
    for _ in range(7):
        client.get("/")
    buffer = get_state(app).buffer
    buffer.drain()
    assert len(segments(tmp_path / "instance")) == 1  # drained counts are on disk
    assert status.flush(app) == 7
    assert segments(tmp_path / "instance") == []
    # The flush recorded its segment as written, in the same transaction.
    with get_state(app).engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(JOURNAL_TABLE)).scalar() == 1


def test_a_failed_flush_keeps_the_journal_until_a_later_one_writes_it(
    sqlite_url: str, make_app: MakeApp, tmp_path: Path
) -> None:
    app, status = make_app(sqlite_url)
    state = get_state(app)
    client = app.test_client()
    for _ in range(4):
        client.get("/")
    real = state.store.write

    def broken(*args: Any, **kwargs: Any) -> int:
        raise sa.exc.OperationalError("INSERT", {}, Exception("database is locked"))

    state.store.write = broken  # type: ignore[method-assign]
    with pytest.raises(sa.exc.OperationalError):
        status.flush(app)
    client.get("/")
    state.buffer.drain()
    # The failed flush's segment and the one the next drain opened.
    assert len(segments(tmp_path / "instance")) == 2
    state.store.write = real  # type: ignore[method-assign]
    assert status.flush(app) == 5
    assert segments(tmp_path / "instance") == []
    app2, status2 = make_app(sqlite_url)  # a next process on the host finds nothing to write
    assert status2.flush(app2) == 0
    assert stored(sqlite_url) == {("/", 200): 5}


def test_stop_without_flush_discards_the_journal(
    sqlite_url: str, make_app: MakeApp, tmp_path: Path
) -> None:
    app, _status = make_app(sqlite_url)
    app.test_client().get("/")
    get_state(app).buffer.drain()
    assert segments(tmp_path / "instance") != []
    get_state(app).buffer.stop(flush=False)
    assert segments(tmp_path / "instance") == []


def test_journal_off(sqlite_url: str, make_app: MakeApp, tmp_path: Path) -> None:
    app, status = make_app(sqlite_url, config={"FLASK_STATUS_JOURNAL": False})
    app.test_client().get("/")
    assert get_state(app).buffer.journal is None
    assert status.flush(app) == 1
    assert not (tmp_path / "instance" / "flask-status-journal").exists()


def test_journal_dir_setting(sqlite_url: str, make_app: MakeApp, tmp_path: Path) -> None:
    app, status = make_app(sqlite_url, config={"FLASK_STATUS_JOURNAL_DIR": str(tmp_path / "j")})
    app.test_client().get("/")
    get_state(app).buffer.drain()
    assert len(list((tmp_path / "j" / "flask-status-journal").glob("*/*.seg"))) == 1
    assert status.flush(app) == 1


def test_a_line_cut_short_is_skipped_not_invented() -> None:
    two = slot(2, 1.5, max_ms=2.0)
    journal_line = json.dumps([["/", 100, 200, *two]]).encode() + b"\n"
    counts, bad = decode(journal_line + journal_line + b'[["/",100,200,1,1.0', merge)
    assert bad == 1
    assert counts == {("/", 100, 200): [4, 6.0, 2.0, 4] + [0] * 11}


def test_two_apps_sharing_an_instance_folder_keep_separate_journals(
    make_app: MakeApp, tmp_path: Path
) -> None:
    app1, _ = make_app(f"sqlite:///{tmp_path / 'one.db'}")
    app2, _ = make_app(f"sqlite:///{tmp_path / 'two.db'}")
    j1, j2 = get_state(app1).buffer.journal, get_state(app2).buffer.journal
    assert isinstance(j1, Journal) and isinstance(j2, Journal)
    assert j1.directory != j2.directory


# -- real processes ------------------------------------------------------------------------


def test_stopped_while_the_database_is_down_the_next_process_writes_the_journal(
    outage: Outage, tmp_path: Path
) -> None:
    instance = tmp_path / "instance"
    n = 300
    proc = child("count", outage.url, instance, str(n), stdin=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    outage.down()
    try:
        _out, err = proc.communicate("stop\n", timeout=60)
    finally:
        outage.up()
    assert proc.returncode == 0, err
    assert "exit flush" in err or "flush failed" in err  # it said so
    assert segments(instance) != []
    assert stored(outage.real_url, missing_tables_ok=True) == {}

    result = run_child("flush", outage.url, instance)
    assert result["written"] == n
    assert stored(outage.real_url) == expected(n)
    assert segments(instance) == []
    # A third process writes nothing again.
    assert run_child("flush", outage.url, instance)["written"] == 0
    assert stored(outage.real_url) == expected(n)
    print(f"\nstop during outage: sent {n}, stored {n}, lost 0")


def test_sigkill_under_steady_traffic_loses_at_most_two_drain_rounds(
    db_url: str, tmp_path: Path
) -> None:
    """A process killed by SIGKILL loses only what its last drains had not yet
    journaled: at most the requests answered during the last two drain rounds
    (about two seconds of traffic, the drain running every second).

    Counted, not timed: the child prints, after each request, how many drains
    have written their journal line. A request printed when ``d`` drains were
    done is in drain ``d + 2`` at the latest (that one starts after drain
    ``d + 1`` ended, which was after the request was queued), so everything
    printed with ``d <= D - 2``, ``D`` the last count seen, must be stored.
    """
    instance = tmp_path / "instance"
    proc = child("steady", db_url, instance)
    assert proc.stdout is not None
    seen: list[tuple[int, int]] = []  # (requests answered, drains journaled)

    def read_until(done: Callable[[int, int], bool]) -> None:
        while not seen or not done(*seen[-1]):
            line = proc.stdout.readline() if proc.stdout is not None else ""
            assert line, "the steady child ended by itself"
            answered, drains = map(int, line.split())
            seen.append((answered, drains))

    read_until(lambda n, d: d >= 4)  # a few rounds of steady traffic
    # Killed halfway through a round, not right after a drain: half the
    # requests the round before took.
    round_start = min(n for n, d in seen if d == seen[-1][1])
    previous = min(n for n, d in seen if d >= seen[-1][1] - 1)
    read_until(lambda n, d: n >= round_start + max(1, (round_start - previous) // 2))
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    sent, last_drains = seen[-1]

    result = run_child("flush", db_url, instance)
    got = sum(stored(db_url).values())
    assert result["written"] == got
    # Never more than was answered (one answer may not have been printed yet).
    assert got <= sent + 1
    must_have = max((n for n, d in seen if d <= last_drains - 2), default=0)
    in_last_two_rounds = sent - must_have
    lost = max(0, sent - got)
    print(
        f"\nSIGKILL: sent {sent}, stored {got}, lost {lost} requests;"
        f" {in_last_two_rounds} were answered in the last two drain rounds"
    )
    assert must_have > 0  # the bound below says something
    assert got >= must_have
    assert lost <= in_last_two_rounds
    assert segments(instance) == []


def _make_orphans(url: str, instance: Path, sizes: list[int]) -> dict[tuple[str, int], int]:
    for n in sizes:
        proc = child("orphan", url, instance, str(n))
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    assert len(segments(instance)) == len(sizes)
    return add(*(expected(n) for n in sizes))


def test_two_processes_replaying_at_once_write_each_count_once(db_url: str, tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    want = _make_orphans(db_url, instance, [5, 7, 11, 13, 17, 19])
    go = tmp_path / "go"
    procs = [child("flush", db_url, instance, "--wait", str(go)) for _ in range(2)]
    time.sleep(1.0)  # both are up and polling for the file (a head start, not an assertion)
    go.write_text("go")
    written = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        written.append(json.loads(out.strip().splitlines()[-1])["written"])
    assert sum(written) == sum(want.values()) == 72
    assert stored(db_url) == want
    assert segments(instance) == []


def test_a_replay_killed_halfway_writes_nothing_twice(db_url: str, tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    want = _make_orphans(db_url, instance, [5, 7, 11])
    proc = child("replay-crash", db_url, instance)
    proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL
    # One segment committed; its file is still there, under the dead replayer.
    once = sum(stored(db_url).values())
    assert once in (5, 7, 11)
    assert len(segments(instance)) == 3

    result = run_child("flush", db_url, instance)
    assert result["written"] == 23 - once
    assert stored(db_url) == want
    assert segments(instance) == []


# -- a flush that hangs ----------------------------------------------------------------------


def _wait_until(condition: Any, what: str, limit: float = 30.0) -> None:
    """Poll ``condition`` (a deadline only against hanging forever, not a speed check)."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


def test_a_hanging_flush_never_stops_the_drain_and_the_exit_flush_is_bounded(
    tmp_path: Path,
) -> None:
    from flask_server_status.buffer import Buffer

    entered, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def hanging_writer(counts: Any, in_transaction: Any) -> int:
        calls.append(int(sum(slot[0] for slot in counts.values())))
        entered.set()
        release.wait(60)
        return calls[-1]

    journal = Journal(str(tmp_path / "journal"))
    buffer = Buffer(hanging_writer, interval=0.01, max_keys=1000, journal=journal)
    try:
        buffer.add("/", 200, 0.001)  # starts the drain thread; the first flush hangs
        _wait_until(entered.is_set, "the first flush")

        def journaled() -> float:
            return sum(
                sum(slot[0] for slot in decode(p.read_bytes(), merge)[0].values())
                for p in (tmp_path / "journal").glob("*.seg")
            )

        for _ in range(5):
            buffer.add("/", 200, 0.001)
        # Drained and journaled while the flush still hangs.
        _wait_until(lambda: journaled() == 6, "the drain behind a hung flush")
        assert calls == [1]  # no second flush piles up behind the hung one
        assert buffer.pending() == 5

        buffer.stop(flush=True, timeout=0.2)  # returns although the writer still hangs
        assert release.is_set() is False
        assert journaled() == 6  # left for the next process
    finally:
        release.set()


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces, so split after ")".
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.append(int(entry))
    return out


def test_sigkill_of_a_gunicorn_worker_under_steady_traffic(db_url: str, tmp_path: Path) -> None:
    """gunicorn replaces the killed worker; the journal it left is written by the
    replacement (or a sibling), and only the killed worker's undrained second is lost."""
    import http.client

    instance = tmp_path / "instance"
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = int(probe.getsockname()[1])
    probe.close()
    env = dict(os.environ, STATUS_TEST_DB_URL=db_url, STATUS_TEST_INSTANCE=str(instance))
    log = open(tmp_path / "gunicorn.log", "wb")  # noqa: SIM115 - closed below
    master = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            "2",
            "--bind",
            f"127.0.0.1:{port}",
            "--pythonpath",
            str(CHILD.parent),
            "--log-level",
            "warning",
            "journal_child:wsgi()",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    answered: list[float] = []
    stop = threading.Event()

    def traffic() -> None:
        while not stop.is_set():
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                conn.request("GET", "/")
                response = conn.getresponse()
                response.read()
                if response.status == 200:
                    answered.append(time.monotonic())
            except OSError:
                time.sleep(0.01)  # not listening yet, or the killed worker's request
            finally:
                conn.close()

    client = threading.Thread(target=traffic)
    try:
        client.start()
        _wait_until(lambda: len(answered) > 50, "gunicorn answering")
        time.sleep(3.0)  # steady traffic, drained and journaled every second
        workers = _children(master.pid)
        assert len(workers) == 2, workers
        os.kill(workers[0], signal.SIGKILL)
        killed_at = time.monotonic()
        time.sleep(3.0)  # gunicorn starts a new worker; traffic goes on
    finally:
        stop.set()
        client.join(30)
        master.send_signal(signal.SIGTERM)
        master.wait(60)
        log.close()
    sent = len(answered)
    got = sum(stored(db_url).values())
    lost = sent - got
    before = [t for t in answered if t <= killed_at]
    rate = len(before) / (before[-1] - before[0])
    print(
        f"\ngunicorn worker SIGKILL: sent {sent}, stored {got}, lost {lost} requests"
        f" = {lost / rate:.2f} s of the server's traffic at {rate:.0f} requests/s"
        " (the killed worker had about half of it)"
    )
    assert 0 <= lost <= 2.5 * rate
    assert segments(instance) == []
