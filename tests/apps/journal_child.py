"""One process of the journal tests (tests/test_journal.py): ``python journal_child.py MODE ...``.

Every mode builds the same app (same name, same database URL, same instance
folder), so all of them share one journal folder, as the processes of one
deployment on one host do.

``count N``        answer N requests ("/" 200, every third "/fail" 500), print
                   ``ready``, wait for a line on stdin, then exit normally: the
                   exit flush runs (and fails if the test took the database away).
``steady``         answer requests until killed, printing after each the count
                   and how many drains have written their journal line.
``orphan N``       answer N requests, drain them into the journal, then leave
                   without any exit hook, as a killed process does.
``flush``          flush once (which writes orphaned journals) and print
                   ``{"written": n}``; with ``--wait FILE``, first wait for FILE.
``replay-crash``   as ``flush``, but SIGKILL itself right after the first journal
                   segment's transaction has committed, before its file is deleted.

``gunicorn journal_child:wsgi()`` serves the same app.

Environment: ``STATUS_TEST_DB_URL``, ``STATUS_TEST_INSTANCE``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from typing import Any

from flask import Flask

from flask_server_status import FlaskStatus, get_state


def make_app() -> tuple[Flask, FlaskStatus]:
    app = Flask("journal_child", instance_path=os.environ["STATUS_TEST_INSTANCE"])
    app.config.update(
        SQLALCHEMY_DATABASE_URI=os.environ["STATUS_TEST_DB_URL"],
        FLASK_STATUS_FLUSH_INTERVAL=3600,
        FLASK_STATUS_EXIT_FLUSH_TIMEOUT=3,
    )

    @app.route("/")
    def index() -> str:
        return "ok"

    @app.route("/fail")
    def fail() -> tuple[str, int]:
        return "no", 500

    return app, FlaskStatus(app)


def wsgi() -> Flask:
    """The app for ``gunicorn journal_child:wsgi()``."""
    return make_app()[0]


def answer(app: Flask, n: int) -> None:
    client = app.test_client()
    for i in range(n):
        client.get("/fail" if i % 3 == 2 else "/")


def main(argv: list[str]) -> None:
    mode = argv[1]
    app, status = make_app()
    state = get_state(app)
    if mode == "count":
        answer(app, int(argv[2]))
        print("ready", flush=True)
        sys.stdin.readline()
        sys.exit(0)
    if mode == "steady":
        # Counts the drains whose journal line is written, so that the test
        # bounds what a kill loses in drain rounds, not in wall-clock seconds.
        journal = state.buffer.journal
        assert journal is not None
        append = journal.append
        drains = 0

        def counted(counts: Any) -> None:
            nonlocal drains
            append(counts)
            drains += 1

        journal.append = counted  # type: ignore[method-assign]
        client = app.test_client()
        n = 0
        while True:
            client.get("/fail" if n % 3 == 2 else "/")
            n += 1
            print(n, drains, flush=True)
            time.sleep(0.002)
    if mode == "orphan":
        answer(app, int(argv[2]))
        state.buffer.drain()
        sys.stdout.flush()
        os._exit(0)
    if mode in ("flush", "replay-crash"):
        if "--wait" in argv:
            wait_for = argv[argv.index("--wait") + 1]
            while not os.path.exists(wait_for):
                time.sleep(0.005)
        if mode == "replay-crash":
            real = state.store.write

            def write_then_die(counts: Any, ids: Any, in_transaction: Any = None) -> int:
                stored = real(counts, ids, in_transaction)
                if in_transaction is not None and counts:
                    os.kill(os.getpid(), signal.SIGKILL)
                return stored

            state.store.write = write_then_die  # type: ignore[method-assign]
        written = status.flush(app)
        print(json.dumps({"written": written}), flush=True)
        state.buffer.stop(flush=False)
        return
    raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv)
