"""A small app for the multi-process tests: ``gunicorn gunicorn_app:app``.

Configured from the environment so the test can start it under gunicorn:

``STATUS_TEST_DB_URL``
    the database URL (required).
``STATUS_TEST_FLUSH_INTERVAL``
    ``FLASK_STATUS_FLUSH_INTERVAL`` in seconds (default 2).
``STATUS_TEST_CONFIG_<KEY>``
    any other config key, its value read as JSON (Flask's
    ``from_prefixed_env``).
``STATUS_TEST_REPORT_DIR``
    if set, every process that loaded this module writes
    ``<pid>.json`` there at exit, *after* flask-server-status's own exit
    flush, so the test can see that the exit flush ran and what it left.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import tempfile
from typing import Any

_report_state: dict[str, Any] = {}


def _report() -> None:
    # Registered before flask_server_status is imported: atexit runs
    # handlers last-in first-out, so this runs after the extension's flush.
    directory = os.environ.get("STATUS_TEST_REPORT_DIR")
    state = _report_state.get("state")
    if not directory or state is None:
        return
    buffer = state.buffer
    report = {
        "pid": os.getpid(),
        "pending": buffer.pending(),
        "failures": buffer.failures,
        "dropped": buffer.dropped,
        "last_error": repr(buffer.last_error) if buffer.last_error else None,
    }
    path = os.path.join(directory, f"{os.getpid()}.json")
    with open(path + ".tmp", "w") as f:
        json.dump(report, f)
    os.replace(path + ".tmp", path)


atexit.register(_report)

from flask import Flask, abort  # noqa: E402

from flask_server_status import FlaskStatus  # noqa: E402


def create_app() -> Flask:
    app = Flask(__name__)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=os.environ["STATUS_TEST_DB_URL"],
        FLASK_STATUS_FLUSH_INTERVAL=float(os.environ.get("STATUS_TEST_FLUSH_INTERVAL", "2")),
        # The journal of this test's workers, never the repository's instance
        # folder, where a later test on the same database would replay it.
        FLASK_STATUS_JOURNAL_DIR=os.environ.get("STATUS_TEST_REPORT_DIR")
        or tempfile.mkdtemp(prefix="gunicorn-app-journal-"),
    )
    # Any other key as JSON, e.g. STATUS_TEST_CONFIG_FLASK_STATUS_READ_TIMEOUT=2.
    app.config.from_prefixed_env("STATUS_TEST_CONFIG")

    @app.route("/")
    def index() -> str:
        """
        # Index
        The landing page.
        """
        return "ok"

    @app.route("/created", methods=["POST"])
    def created() -> tuple[str, int]:
        return "created", 201

    @app.route("/items/<int:item_id>")
    def item(item_id: int) -> dict[str, int]:
        # A 404 answered by a matched rule counts for that rule.
        if item_id % 2:
            abort(404)
        return {"id": item_id}

    @app.route("/gone")
    def gone() -> str:
        # A 404 from a rule without variables: the page itself is missing.
        abort(404)

    @app.route("/boom")
    def boom() -> str:
        raise RuntimeError("boom on purpose")

    @app.route("/unavailable")
    def unavailable() -> tuple[str, int]:
        return "down for maintenance", 503

    @app.route("/teapot")
    def teapot() -> tuple[str, int]:
        return "I'm a teapot", 418

    # /boom raises on purpose thousands of times: keep the log readable.
    app.logger.setLevel(logging.CRITICAL)
    status = FlaskStatus(app)
    _report_state["state"] = status.state(app)
    return app


app = create_app()
