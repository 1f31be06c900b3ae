"""SIGTERM under servers that leave it to the default action: counts are still written.

The Flask dev server and waitress install no SIGTERM handler, so the
default action killed the process without running exit handlers, and
``flask run`` stopped with SIGTERM stored 0 of 10 requests. The extension
now installs one that runs the exit flush and then ends the process as the
default would; it keeps any handler the host installed, and stays out of
gunicorn's way (``tests/test_gunicorn.py`` stops gunicorn with SIGTERM).
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import MakeApp, stored

from flask_server_status import shutdown

pytestmark = pytest.mark.slow

APPS_DIR = Path(__file__).parent / "apps"
REQUESTS = 10


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(command: list[str], port: int, url: str, tmp_path: Path) -> subprocess.Popen[bytes]:
    """Start a server of ``gunicorn_app``'s app; no background flush falls due."""
    env = dict(
        os.environ,
        STATUS_TEST_DB_URL=url,
        STATUS_TEST_FLUSH_INTERVAL="3600",
        PYTHONPATH=os.pathsep.join([str(APPS_DIR), str(tmp_path)]),
        # Not the app's instance folder in the source tree, shared by every test.
        STATUS_TEST_CONFIG_FLASK_STATUS_JOURNAL_DIR=str(tmp_path / "journal"),
    )
    with open(tmp_path / "server.log", "wb") as log:  # the child keeps its own copy
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError((tmp_path / "server.log").read_text())
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("the server did not listen:\n" + (tmp_path / "server.log").read_text())


def send(port: int, n: int = REQUESTS) -> None:
    for _ in range(n):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("GET", "/")
            response = conn.getresponse()
            response.read()
            assert response.status == 200
        finally:
            conn.close()


def terminate(proc: subprocess.Popen[bytes], tmp_path: Path) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError("SIGTERM did not end the server") from None


def commands(server: str, port: int, module: str = "gunicorn_app") -> list[str]:
    if server == "flask-run":
        return [sys.executable, "-m", "flask", "--app", module, "run", "--port", str(port)]
    pytest.importorskip("waitress")
    return [sys.executable, "-m", "waitress", f"--listen=127.0.0.1:{port}", f"{module}:app"]


@pytest.mark.parametrize("server", ["flask-run", "waitress"])
def test_sigterm_writes_every_count(db_url: str, tmp_path: Path, server: str) -> None:
    port = free_port()
    proc = start(commands(server, port), port, db_url, tmp_path)
    try:
        send(port)
        assert stored(db_url, missing_tables_ok=True) == Counter(), (
            "nothing is written before the stop"
        )
    finally:
        code = terminate(proc, tmp_path)
    log = (tmp_path / "server.log").read_text()
    assert stored(db_url) == Counter({("/", 200): REQUESTS}), log
    # Ended as SIGTERM's default action ends a process.
    assert code == -signal.SIGTERM, log


HOST_WITH_HANDLER = """
import os
import signal
import sys


def on_term(signum, frame):
    with open(os.environ["STATUS_TEST_MARK"], "w") as f:
        f.write("the host's handler ran")
    sys.exit(3)


signal.signal(signal.SIGTERM, on_term)

from gunicorn_app import app  # noqa: E402
"""


def test_host_handler_is_kept(sqlite_url: str, tmp_path: Path) -> None:
    """The host's handler runs, not ours; its sys.exit runs the atexit flush."""
    (tmp_path / "host_with_handler.py").write_text(HOST_WITH_HANDLER)
    mark = tmp_path / "mark"
    os.environ["STATUS_TEST_MARK"] = str(mark)
    try:
        port = free_port()
        proc = start(commands("flask-run", port, "host_with_handler"), port, sqlite_url, tmp_path)
    finally:
        del os.environ["STATUS_TEST_MARK"]
    try:
        send(port)
    finally:
        code = terminate(proc, tmp_path)
    assert mark.read_text() == "the host's handler ran"
    assert code == 3
    assert stored(sqlite_url) == Counter({("/", 200): REQUESTS})


@pytest.fixture
def sigterm_default() -> Iterator[None]:
    """SIGTERM at its default action for the test, whatever it was before."""
    before = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    yield
    signal.signal(signal.SIGTERM, before)


def test_installed_only_over_the_default(
    sigterm_default: None, sqlite_url: str, make_app: MakeApp
) -> None:
    make_app(sqlite_url)
    assert signal.getsignal(signal.SIGTERM) is shutdown._on_sigterm  # noqa: SLF001 - the handler


@pytest.mark.parametrize("kept", [signal.SIG_IGN, "handler"])
def test_host_choice_in_process_is_kept(
    sigterm_default: None, sqlite_url: str, make_app: MakeApp, kept: Any
) -> None:
    def host_handler(signum: int, frame: Any) -> None:  # pragma: no cover - never called
        pass

    chosen = host_handler if kept == "handler" else kept
    signal.signal(signal.SIGTERM, chosen)
    make_app(sqlite_url)
    assert signal.getsignal(signal.SIGTERM) is chosen


def test_not_installed_from_another_thread(
    sigterm_default: None, sqlite_url: str, make_app: MakeApp
) -> None:
    made: list[Any] = []
    worker = threading.Thread(target=lambda: made.append(make_app(sqlite_url)))
    worker.start()
    worker.join(30)
    assert made
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


DEMO = Path(__file__).resolve().parent.parent / "demo_app.py"


def test_the_demo_writes_every_count_on_sigterm(tmp_path: Path) -> None:
    """``docker stop`` of the demo: its counts are written, not lost with the process."""
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(DEMO.parent))
    with open(tmp_path / "server.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, str(DEMO), "--port", str(port), "--database", url, "--traffic", "0"],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, (tmp_path / "server.log").read_text()
                time.sleep(0.1)
        send(port)
    finally:
        code = terminate(proc, tmp_path)
    log_text = (tmp_path / "server.log").read_text()
    assert stored(url)[("/", 200)] == REQUESTS, log_text
    assert code == -signal.SIGTERM, log_text
