"""A host app with its own db, models, templates, static files, error handlers
and JSON settings keeps working, unchanged, beside FlaskStatus."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from flask_server_status import FlaskStatus, get_state
from flask_server_status.models import UNMATCHED_RULE, Base
from flask_server_status.models import Log as StatusLog
from flask_server_status.models import Route as StatusRoute

sys.path.insert(0, str(Path(__file__).parent / "apps"))
import host_app

HOST_TABLES = {"routes", "logs"}
STATUS_TABLES = {
    "flask_status_journal",  # segments of the local journal already written
    "flask_status_route",
    "flask_status_log",
    "flask_status_log_hour",
    "flask_status_log_day",
}


def host_settings(app: Flask) -> dict[str, Any]:
    """Everything of the host that the extension must leave as it found it."""
    return {
        "root_path": app.root_path,
        "template_folder": app.template_folder,
        "static_folder": app.static_folder,
        "static_url_path": app.static_url_path,
        "jinja_searchpath": list(app.jinja_loader.searchpath),  # type: ignore[union-attr]
        "error_handlers": {
            code: dict(handlers) for code, handlers in app.error_handler_spec[None].items()
        },
        "json_provider": type(app.json),
        "json": (app.json.sort_keys, app.json.ensure_ascii, app.json.compact),  # type: ignore[attr-defined]
        "logger": (list(app.logger.handlers), app.logger.level, app.logger.propagate),
        "root_logger": (list(logging.getLogger().handlers), logging.getLogger().level),
        "host_tables": set(host_app.db.metadata.tables),
        # Flask-SQLAlchemy's Model type does not declare the declarative registry it has.
        "host_registry": sorted(
            m.class_.__name__
            for m in host_app.db.Model.registry.mappers  # type: ignore[attr-defined]
        ),
        "host_teardowns": list(app.teardown_appcontext_funcs),
        "host_rules": sorted(r.rule for r in app.url_map.iter_rules()),
        "template_for_index": app.jinja_env.get_or_select_template("index.html").filename,
    }


@pytest.fixture
def host(db_url: str, tmp_path: Path) -> Iterator[Flask]:
    app = host_app.create_app(db_url, str(tmp_path / "instance"))
    with app.app_context():
        host_app.db.drop_all()  # a previous failed run on a server database
        host_app.db.create_all()
    yield app
    with app.app_context():
        host_app.db.drop_all()
        for engine in host_app.db.engines.values():
            engine.dispose()
    state = app.extensions.get("flask-server-status")
    if state is not None:
        get_state(app).buffer.stop(flush=False)


def table_names(app: Flask) -> set[str]:
    with app.app_context():
        return set(sa.inspect(host_app.db.engine).get_table_names())


def test_host_keeps_working(host: Flask) -> None:
    app = host
    before = host_settings(app)
    status = FlaskStatus(app)
    after = host_settings(app)
    host_rules = set(before.pop("host_rules"))
    assert host_rules <= set(after.pop("host_rules"))  # ours are added, none removed
    assert after == before
    # The status tables sit beside the host's, under their own prefix.
    assert all(name.startswith("flask_status_") for name in Base.metadata.tables)
    assert table_names(app) == HOST_TABLES | STATUS_TABLES
    assert get_state(app).db is host_app.db  # the host's db is reused

    client = app.test_client()
    # The host's models, through its own session, relationships included.
    assert client.post("/api/routes", json={"path": "/a", "title": "Alpha <1>"}).status_code == 201
    assert client.post("/api/routes", json={"path": "/b", "title": "Beta"}).status_code == 201
    assert client.get("/api/routes").get_json() == [
        {"path": "/a", "message": "created /a"},
        {"path": "/b", "message": "created /b"},
    ]
    # The host's template (not ours, not shadowed), escaped as the host wrote it.
    page = client.get("/").get_data(as_text=True)
    assert "<h1>Host home</h1>" in page
    assert "<li>Alpha &lt;1&gt; at /a</li>" in page
    assert "/static/app.css" in page
    # The host's static files.
    css = client.get("/static/app.css")
    assert css.status_code == 200
    assert b"host stylesheet" in css.data
    css.close()
    # The host's JSON settings: key order kept, non-ASCII as is, compact.
    assert client.get("/api/data").data == '{"zeta":1,"alpha":"é"}\n'.encode()
    # The host's error handlers, for an unknown path and for an exception.
    missing = client.get("/no/such/page")
    assert missing.status_code == 404
    assert missing.get_json() == {"error": "nothing here", "path": "/no/such/page"}
    failed = client.get("/fail")
    assert failed.status_code == 500
    assert "Host error page: host failure" in failed.get_data(as_text=True)
    # Our page is ours, not the host's index.html.
    ours = client.get("/status")
    assert "Host home" not in ours.get_data(as_text=True)

    # And everything above was counted, under our tables, not the host's.
    assert status.flush(app) == 7
    state = get_state(app)
    with state.engine.connect() as conn:
        counted = {
            (rule, code): int(n)
            for rule, code, n in conn.execute(
                sa.select(StatusRoute.rule, StatusLog.status, sa.func.sum(StatusLog.count))
                .join(StatusRoute, StatusRoute.id == StatusLog.route_id)
                .group_by(StatusRoute.rule, StatusLog.status)
            )
        }
        names = {r: n for r, n in conn.execute(sa.select(StatusRoute.rule, StatusRoute.name))}
    # Static files and our own page are not tracked routes: counted, not stored.
    assert counted == {
        ("/api/routes", 201): 2,
        ("/api/routes", 200): 1,
        ("/", 200): 1,
        ("/api/data", 200): 1,
        (UNMATCHED_RULE, 404): 1,
        ("/fail", 500): 1,
    }
    assert names["/"] == "Home"
    with app.app_context():
        # The host's rows are untouched by all that.
        assert [r.title for r in host_app.db.session.scalars(sa.select(host_app.Route))] == [
            "Alpha <1>",
            "Beta",
        ]


def test_host_create_all_and_drop_all_leave_our_tables(host: Flask) -> None:
    app = host
    status = FlaskStatus(app)
    client = app.test_client()
    for _ in range(3):
        client.get("/api/data")
    status.flush(app)

    with app.app_context():
        host_app.db.drop_all()
    # The host's drop_all dropped the host's tables only.
    assert table_names(app) == STATUS_TABLES
    with app.app_context():
        host_app.db.create_all()
    assert table_names(app) == HOST_TABLES | STATUS_TABLES

    # Our history survived, and counting goes on.
    client.get("/api/data")
    assert status.flush(app) == 1
    with get_state(app).engine.connect() as conn:
        total = conn.execute(
            sa.select(sa.func.sum(StatusLog.count))
            .join(StatusRoute, StatusRoute.id == StatusLog.route_id)
            .where(StatusRoute.rule == "/api/data")
        ).scalar()
    assert total == 4
