"""One config table, checked before anything changes; start-up refusals; imports one way."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask_admin import Admin
from werkzeug.security import generate_password_hash

from flask_server_status import FlaskStatus
from flask_server_status.config import (
    OPTIONS,
    ConfigError,
    ConfigVars,
    Settings,
    config_table,
    read_settings,
)

PACKAGE = Path(__file__).resolve().parent.parent / "flask_server_status"


def _app(tmp_path: Path, **config: Any) -> Flask:
    tmp_path.mkdir(parents=True, exist_ok=True)
    app = Flask("config_test_app", instance_path=str(tmp_path / "instance"))
    app.config.update(
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'status.db'}",
        SECRET_KEY="test-secret",
        FLASK_STATUS_FLUSH_INTERVAL=3600,
    )
    app.config.update(config)

    @app.route("/")
    def index() -> str:
        return "hi"

    return app


def _untouched(app: Flask, wsgi_app: Any, rules: int, blueprints: set[str]) -> None:
    """What a refused init_app must leave as it was."""
    assert "flask-server-status" not in app.extensions
    assert "sqlalchemy" not in app.extensions
    assert app.wsgi_app == wsgi_app
    assert set(app.blueprints) == blueprints
    assert len(list(app.url_map.iter_rules())) == rules


# -- the table -------------------------------------------------------------------


def test_every_option_is_a_constant_and_a_settings_field() -> None:
    constants = {v for k, v in vars(ConfigVars).items() if k.isupper()}
    assert constants == {option.key for option in OPTIONS}
    fields = set(Settings.__dataclass_fields__)
    assert fields == {option.field for option in OPTIONS}


def test_defaults_read_back_as_the_settings_defaults() -> None:
    settings = read_settings({})
    assert settings == Settings()
    assert settings.flush_interval == 60.0
    assert settings.failure_codes == frozenset({404})
    assert settings.status_window == 5


def test_the_table_names_every_key_once() -> None:
    table = config_table()
    for option in OPTIONS:
        assert table.count(f"`{option.key}`") == 1, option.key
    assert "`API_ENABLED` / `FLASK_STATUS_API_ENABLED`" in table


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("FLASK_STATUS_FLUSH_INTERVAL", "abc", "a number above 0"),
        ("FLASK_STATUS_FLUSH_INTERVAL", 0, "a number above 0"),
        ("FLASK_STATUS_FLUSH_INTERVAL", float("nan"), "a number"),
        ("FLASK_STATUS_STATUS_WINDOW", 0, "from 1 to 60"),
        ("FLASK_STATUS_STATUS_WINDOW", 2.5, "a whole number"),
        ("FLASK_STATUS_STATUS_WINDOW", True, "a whole number"),
        ("FLASK_STATUS_REFRESH_SECONDS", 99999, "from 1 to 3600"),
        ("FLASK_STATUS_CACHE_SECONDS", -1, "from 0 to 60"),
        ("FLASK_STATUS_DEGRADED_RATIO", 1.5, "above 0 up to 1"),
        ("FLASK_STATUS_FAILURE_CODES", [500], "4xx status codes"),
        ("FLASK_STATUS_FAILURE_CODES", 404, "4xx status codes"),
        ("FLASK_STATUS_API_ENABLED", "maybe", "true or false"),
        ("FLASK_STATUS_LANGUAGE", "fr", "'en', 'es'"),
        ("FLASK_STATUS_PUBLIC_URL", "status.example.com", "absolute http(s) URL"),
        ("FLASK_STATUS_PAGE_TITLE", 42, "a string"),
        ("FLASK_STATUS_INCIDENT_OPEN_MINUTES", 0, "from 1 to 60"),
    ],
)
def test_a_bad_value_is_refused_with_its_key(key: str, value: Any, words: str) -> None:
    with pytest.raises(ConfigError) as refused:
        read_settings({key: value})
    assert key in str(refused.value)
    assert words in str(refused.value)


def test_strings_from_the_environment_are_read() -> None:
    settings = read_settings(
        {
            "FLASK_STATUS_FLUSH_INTERVAL": "2.5",
            "FLASK_STATUS_STATUS_WINDOW": "7",
            "FLASK_STATUS_API_ENABLED": "yes",
            "FLASK_STATUS_API_SECRET": "Bearer  tok ",
            "FLASK_STATUS_FAILURE_CODES": "404, 429",
        }
    )
    assert settings.flush_interval == 2.5
    assert settings.status_window == 7
    assert settings.api_enabled is True
    assert settings.api_secret == "tok"
    assert settings.failure_codes == frozenset({404, 429})


def test_ratios_out_of_order_are_refused() -> None:
    with pytest.raises(ConfigError, match="FLASK_STATUS_DEGRADED_RATIO <="):
        read_settings(
            {"FLASK_STATUS_DEGRADED_RATIO": 0.2, "FLASK_STATUS_PARTIAL_OUTAGE_RATIO": 0.1}
        )


def test_the_prefixed_key_wins_over_the_original() -> None:
    settings = read_settings({"API_SECRET": "old", "FLASK_STATUS_API_SECRET": "new"})
    assert settings.api_secret == "new"
    assert read_settings({"API_SECRET": "old"}).api_secret == "old"


# -- start-up refusals leave the app untouched -----------------------------------------


def _refused(app: Flask, match: str, **kwargs: Any) -> None:
    wsgi_app, rules = app.wsgi_app, len(list(app.url_map.iter_rules()))
    blueprints = set(app.blueprints)
    status = FlaskStatus()
    with pytest.raises(ConfigError, match=match):
        status.init_app(app, **kwargs)
    _untouched(app, wsgi_app, rules, blueprints)


def test_api_enabled_without_a_secret_is_refused_before_anything_is_registered(
    tmp_path: Path,
) -> None:
    app = _app(tmp_path, API_ENABLED=True)
    _refused(app, "API_ENABLED is set but API_SECRET is not")
    # Fixed and retried on the same app: no "already registered".
    app.config["API_SECRET"] = "s3cret"
    status = FlaskStatus(app)
    assert "flask_status_api" in app.blueprints
    status.state(app).buffer.stop(flush=False)


def test_an_int_api_secret_gets_a_clear_message(tmp_path: Path) -> None:
    app = _app(tmp_path, API_ENABLED=True, API_SECRET=12345)
    _refused(app, r"FLASK_STATUS_API_SECRET must be a string .* got a int")


def test_a_bad_value_leaves_the_app_untouched(tmp_path: Path) -> None:
    app = _app(tmp_path, FLASK_STATUS_FLUSH_INTERVAL="abc")
    _refused(app, "FLASK_STATUS_FLUSH_INTERVAL must be a number")


def test_admin_views_without_a_secret_key_are_refused(tmp_path: Path) -> None:
    app = _app(tmp_path)
    del app.config["SECRET_KEY"]
    admin = Admin(app)
    _refused(app, "SECRET_KEY", admin=admin)
    assert not any(
        getattr(view, "endpoint", "").startswith("flask_status") for view in admin._views  # noqa: SLF001
    )


def test_a_user_without_a_hash_keeps_the_admin_closed_by_refusing(tmp_path: Path) -> None:
    app = _app(tmp_path, FLASK_STATUS_ADMIN_USERNAME="ops")
    _refused(app, "FLASK_STATUS_ADMIN_USERNAME is set but FLASK_STATUS_ADMIN_PASSWORD_HASH is not")
    other = _app(tmp_path, FLASK_STATUS_ADMIN_PASSWORD_HASH=generate_password_hash("pw"))
    _refused(other, "FLASK_STATUS_ADMIN_PASSWORD_HASH is set but FLASK_STATUS_ADMIN_USERNAME")


def test_a_plain_password_in_the_hash_key_is_refused(tmp_path: Path) -> None:
    app = _app(
        tmp_path, FLASK_STATUS_ADMIN_USERNAME="ops", FLASK_STATUS_ADMIN_PASSWORD_HASH="hunter2"
    )
    _refused(app, "generate_password_hash")
    settings = read_settings(
        {
            "FLASK_STATUS_ADMIN_USERNAME": "ops",
            "FLASK_STATUS_ADMIN_PASSWORD_HASH": generate_password_hash("pw", "pbkdf2"),
        }
    )
    assert settings.basic_auth


def test_a_host_route_under_the_prefix_is_refused(tmp_path: Path) -> None:
    app = _app(tmp_path)

    @app.route("/status/health")
    def health() -> str:
        return "ok"

    _refused(app, r"'/status/health' \(health\) lies where flask-server-status serves '/status'")
    other = _app(tmp_path)

    @other.route("/board")
    def board() -> str:
        return "mine"

    _refused(other, "'/board'", url_prefix="board")


def test_a_host_route_under_the_api_prefix_is_refused(tmp_path: Path) -> None:
    app = _app(tmp_path, API_ENABLED=True, API_SECRET="tok")

    @app.route("/flask-status/mine")
    def mine() -> str:
        return "mine"

    _refused(app, "'/flask-status'")


def test_routes_must_be_a_list_of_rules(tmp_path: Path) -> None:
    _refused(_app(tmp_path), "routes must be a list", routes="/")
    _refused(_app(tmp_path), "starting with '/'", routes=["index"])


# -- flush() outside an app context ---------------------------------------------------


def test_flush_outside_an_app_context_flushes_the_one_app(tmp_path: Path) -> None:
    app = _app(tmp_path)
    status = FlaskStatus(app)
    try:
        client = app.test_client()
        for _ in range(3):
            assert client.get("/").status_code == 200
        assert status.flush() == 3  # no app context here
    finally:
        status.state(app).buffer.stop(flush=False)


def test_flush_with_two_apps_and_no_context_names_flush_app(tmp_path: Path) -> None:
    first, second = _app(tmp_path / "a"), _app(tmp_path / "b")
    status = FlaskStatus()
    status.init_app(first)
    status.init_app(second)
    try:
        with pytest.raises(RuntimeError, match=r"status\.flush\(app\)"):
            status.flush()
        second.test_client().get("/")
        assert status.flush(second) == 1
        with first.app_context():
            assert status.flush() == 0
    finally:
        for app in (first, second):
            status.state(app).buffer.stop(flush=False)


# -- imports run one way ------------------------------------------------------------------


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _runtime_imports(path: Path, module: str) -> set[str]:
    """Package modules ``path`` imports at run time, at any depth (lazy ones too).

    Imports under ``if TYPE_CHECKING:`` are for the type checker only and
    never run, so they are left out, as Flask-SQLAlchemy does.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    base = module.split(".") if is_package else module.split(".")[:-1]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[: len(base) - (node.level - 1)]
                target = ".".join(anchor + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("flask_server_status"):
                found.add(target)
                for alias in node.names:
                    found.add(f"{target}.{alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("flask_server_status"):
                    found.add(alias.name)
        for inner in ast.iter_child_nodes(node):
            visit(inner)

    visit(tree)
    return found


def test_no_import_cycles_in_the_package() -> None:
    modules = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = {t for t in _runtime_imports(path, name) if t in modules and t != name}
        graph[name] = targets
    # A package's __init__ re-exports its modules; importing a submodule also runs
    # its package's __init__, which is not an import *back*, so it is left out.
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def walk(node: str, trail: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if node.startswith(target + ".") or target == "flask_server_status":
                continue
            if state.get(target) == 1:
                cycles.append([*trail[trail.index(target) :], target])
            elif target not in state:
                walk(target, [*trail, target])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            walk(name, [name])
    assert cycles == []
    # The extension only wires things up: nothing but the package's __init__ imports it.
    importers = sorted(n for n, t in graph.items() if "flask_server_status.extension" in t)
    assert importers == ["flask_server_status"]
