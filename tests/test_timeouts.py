"""The connect and pool-checkout limits: a read that cannot get a connection answers 503.

The statement limits (a hung server) are shown in ``test_outage.py`` and
``test_hang.py``. Here: a server that accepts the TCP connection but never
says a word (the connect limit), and a pool with no free connection (the
checkout limit). Neither may hold a page request until the client gives up.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
import requests
from helpers import LiveServerFactory, MakeApp

SILENT_SERVERS = {
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:{port}/test",
    "mariadb": "mysql+pymysql://root@127.0.0.1:{port}/test",
}


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port whose kernel completes the TCP handshake, and nobody ever answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)  # never accepted: connections wait in the backlog
    try:
        yield int(listener.getsockname()[1])
    finally:
        listener.close()


@pytest.mark.parametrize("kind", sorted(SILENT_SERVERS))
def test_a_server_that_never_answers_is_a_503_not_a_hang(
    kind: str, silent_port: int, make_app: MakeApp, live_server: LiveServerFactory
) -> None:
    url = SILENT_SERVERS[kind].format(port=silent_port)
    app, _status = make_app(
        url, config={"FLASK_STATUS_DB_CONNECT_TIMEOUT": 1, "FLASK_STATUS_READ_TIMEOUT": 1}
    )
    server = live_server(app)
    # The client would wait 60 s; the connect limit answers long before.
    answer = requests.get(f"{server.url}/status/summary.json", timeout=60)
    assert answer.status_code == 503
    assert requests.get(f"{server.url}/", timeout=60).status_code == 200


# SQLite opens a file per connection: there is no server connection to wait for.
@pytest.mark.parametrize("db_url", ["postgresql", "mariadb"], indirect=True)
def test_no_free_pooled_connection_is_a_503_not_a_hang(
    db_url: str, make_app: MakeApp, live_server: LiveServerFactory
) -> None:
    app, status = make_app(
        db_url,
        config={
            "FLASK_STATUS_POOL_TIMEOUT": 1,
            "FLASK_STATUS_PAGE_CACHE_SECONDS": 0,
            "SQLALCHEMY_ENGINE_OPTIONS": {"pool_size": 1, "max_overflow": 0},
        },
    )
    engine = status.state(app).engine
    assert engine.pool.timeout() == 1  # type: ignore[attr-defined]
    server = live_server(app)
    assert requests.get(f"{server.url}/status/summary.json", timeout=60).status_code == 200
    held = engine.connect()  # the one pooled connection, taken
    try:
        answer = requests.get(f"{server.url}/status/summary.json?fresh=1", timeout=60)
        assert answer.status_code == 503
    finally:
        held.close()
    assert requests.get(f"{server.url}/status/summary.json?again=1", timeout=60).status_code == 200
