"""Shared fixtures: an app factory, the three database backends, a live server.

Database tests take the ``db_url`` fixture and so run once per backend:
SQLite (always), PostgreSQL and MariaDB/MySQL. The server backends are used
only when asked for, because their cases create and drop tables: a server
that happens to listen on 5432 or 3306 is never written to by default.

* ``FLASK_STATUS_TEST_POSTGRES_URL`` / ``FLASK_STATUS_TEST_MYSQL_URL`` set:
  that server is used (an unreachable one skips, with the reason);
* ``CI=true`` or ``FLASK_STATUS_REQUIRE_DATABASES=1`` without them: the
  defaults below are used;
* neither: those cases skip and say which variable to set.

With ``FLASK_STATUS_REQUIRE_DATABASES=1`` (as ``.ci/run`` sets) an unreachable
server is a failure, never a skip.

    FLASK_STATUS_TEST_POSTGRES_URL  default postgresql+psycopg://postgres@127.0.0.1:5432/test
    FLASK_STATUS_TEST_MYSQL_URL     default mysql+pymysql://root@127.0.0.1:3306/test
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from helpers import server_problem
from werkzeug.serving import make_server

from flask_server_status import FlaskStatus
from flask_server_status.models import Base

DEFAULT_URLS = {
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    "mariadb": "mysql+pymysql://root@127.0.0.1:3306/test",
}
URL_VARIABLES = {
    "postgresql": "FLASK_STATUS_TEST_POSTGRES_URL",
    "mariadb": "FLASK_STATUS_TEST_MYSQL_URL",
}
REQUIRE_DATABASES = os.environ.get("FLASK_STATUS_REQUIRE_DATABASES") == "1"
#: CI runners set ``CI=true`` (GitHub Actions, GitLab, most others).
IN_CI = os.environ.get("CI", "").lower() in ("true", "1", "yes")


def configured_server_url(kind: str) -> str | None:
    """The URL of the ``"postgresql"`` or ``"mariadb"`` server to test on, if asked for.

    None unless its variable is set, or CI / ``FLASK_STATUS_REQUIRE_DATABASES=1``
    says to use the default: tests drop and create tables there, so a server
    that merely answers on the default port is not enough.
    """
    url = os.environ.get(URL_VARIABLES[kind])
    if url:
        return url
    if IN_CI or REQUIRE_DATABASES:
        return DEFAULT_URLS[kind]
    return None


POSTGRES_URL = configured_server_url("postgresql")
MYSQL_URL = configured_server_url("mariadb")


def drop_status_tables(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        Base.metadata.drop_all(conn)
    engine.dispose()


def _server_url(kind: str) -> str:
    url = POSTGRES_URL if kind == "postgresql" else MYSQL_URL
    if url is None:
        pytest.skip(
            f"{kind} not configured: set {URL_VARIABLES[kind]}={DEFAULT_URLS[kind]} to run"
            " (tests create and drop tables there; CI=true or"
            " FLASK_STATUS_REQUIRE_DATABASES=1 use that default)"
        )
    problem = server_problem(url)
    if problem is not None:
        message = f"{kind} server not reachable at {url.split('@')[-1]} ({problem})"
        if REQUIRE_DATABASES:
            pytest.fail(message + "; FLASK_STATUS_REQUIRE_DATABASES=1 forbids skipping")
        pytest.skip(message)
    return url


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def db_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """A clean database URL, once per backend; the status tables are dropped after."""
    kind = request.param
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'status.db'}"
        return
    url = _server_url(kind)
    drop_status_tables(url)
    yield url
    drop_status_tables(url)


@pytest.fixture
def sqlite_url(tmp_path: Any) -> str:
    """A SQLite file URL, for tests that are not about the database."""
    return f"sqlite:///{tmp_path / 'status.db'}"


def add_demo_routes(app: Flask) -> None:
    """Routes with every kind of answer the tests need."""

    @app.route("/")
    def index() -> tuple[str, int]:
        """
        # Index
        The landing page.
        """
        return "Welcome to API!", 200

    @app.route("/code/<int:code>", methods=["GET", "POST", "PUT", "DELETE"])
    def code(code: int) -> tuple[str, int] | Any:
        """
        # Any code
        Answers with the status code in the path.
        """
        if code in (301, 302):
            return "", code, {"Location": "/"}
        return f"code {code}", code

    @app.route("/boom")
    def boom() -> str:
        """Raises."""
        raise RuntimeError("boom on purpose")

    @app.route("/items/<int:item_id>")
    def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}


@pytest.fixture
def make_app(tmp_path: Any) -> Iterator[Callable[..., tuple[Flask, FlaskStatus]]]:
    """``make_app(url, **flaskstatus_kwargs)`` -> (app, status): a fresh app per call.

    Config can be given with ``config={...}``. Background flushes are made
    rare so tests decide when to flush; every buffer is stopped afterwards.
    """
    made: list[tuple[Flask, FlaskStatus]] = []

    def factory(
        url: str, config: dict[str, Any] | None = None, routes_first: bool = True, **kwargs: Any
    ) -> tuple[Flask, FlaskStatus]:
        app = Flask("status_test_app", instance_path=str(tmp_path / "instance"))
        app.config.update(
            SQLALCHEMY_DATABASE_URI=url,
            SECRET_KEY="test-secret",
            FLASK_STATUS_FLUSH_INTERVAL=3600,
        )
        app.config.update(config or {})
        if routes_first:
            add_demo_routes(app)
        status = FlaskStatus(app, **kwargs)
        if not routes_first:
            add_demo_routes(app)
        made.append((app, status))
        return app, status

    yield factory
    for app, status in made:
        state = status.state(app)
        state.buffer.stop(flush=False)
        state.engine.dispose()


class LiveServer:
    """A real threaded WSGI server on a free loopback port."""

    def __init__(self, app: Flask) -> None:
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def live_server() -> Iterator[Callable[[Flask], LiveServer]]:
    """``live_server(app)`` -> a :class:`LiveServer` (``.url``), stopped after the test."""
    servers: list[LiveServer] = []

    def start(app: Flask) -> LiveServer:
        server = LiveServer(app)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
