"""The README's two commands run as written, so the README cannot drift from what works.

Both run through ``sh -c`` with the exact line from the README, in a fresh
virtual environment whose ``python`` comes first on ``PATH`` and which sees
the running interpreter's packages through a ``.pth`` file (``tests/venvs.py``:
offline and quick, from a virtualenv too): the README's
``python -m pip install -e …`` then installs into that environment, never into
the one running these tests. The demo line gets ``--port 0 --exit-after …
--database …`` appended, the test line is cut before ``&&`` (running pytest
from pytest would recurse); ``.ci/run`` runs both whole.

Every Python block of the README runs too (``test_readme_python_example``):
each becomes a script served on loopback, driven over HTTP, and flushed with
a bare ``status.flush()`` as the README shows it; the API calls (``requests``
and ``curl``) run against one of them.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import sqlalchemy as sa
from conftest import configured_server_url, drop_status_tables
from venvs import clean_env, make_venv

from flask_server_status.config import config_table

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
CI = ROOT / ".ci" / "run"

DEMO_COMMAND = "python -m pip install -e . && python demo_app.py --history 90"
TEST_COMMAND = "python -m pip install -e '.[test]' && python -m pytest"


def readme_commands() -> list[str]:
    """The one-line ``sh`` blocks of the README's "Two commands" section, in order."""
    text = README.read_text(encoding="utf-8")
    section = re.search(r"^## Two commands\n(.*?)(?=^## )", text, re.M | re.S)
    assert section, "README.md has no '## Two commands' section"
    blocks = re.findall(r"^```sh\n(.*?)^```", section.group(1), re.M | re.S)
    return [block.strip() for block in blocks]


def test_readme_starts_with_the_two_commands() -> None:
    assert readme_commands() == [DEMO_COMMAND, TEST_COMMAND]
    text = README.read_text(encoding="utf-8")
    headings = re.findall(r"^## (.+)$", text, re.M)
    # The order: what it is, the two commands, usage, config, API, deploying,
    # counting, benchmarks.
    order = [
        "Two commands",
        "Usage",
        "Configuration",
        "The configure API",
        "Deploying",
        "How counting works",
        "Benchmarks",
    ]
    assert [h for h in headings if h in order] == order
    for image in ("docs/status-desktop.png", "docs/admin-routes.png", "docs/demo-status.png"):
        assert f"]({image})" in text
        assert (ROOT / image).is_file(), image


def test_every_config_key_is_in_the_readme_table() -> None:
    """The README's table is the one in config.py, and the package reads no other key."""
    text = README.read_text(encoding="utf-8")
    table = re.search(r"<!-- config-table -->\n(.*?)\n<!-- /config-table -->", text, re.S)
    assert table, "README.md has no config table between <!-- config-table --> markers"
    assert table.group(1) == config_table(), (
        "README's table differs from config.py: paste the output of"
        " flask_server_status.config.config_table()"
    )
    documented = set(re.findall(r"`((?:FLASK_STATUS_)?[A-Z][A-Z_]+)`", table.group(1)))
    source = "\n".join(
        path.read_text(encoding="utf-8") for path in (ROOT / "flask_server_status").rglob("*.py")
    )
    read = set(re.findall(r"[\"'](FLASK_STATUS_[A-Z][A-Z_]*[A-Z])[\"']", source))
    assert read, "found no config keys in the package"
    assert read - documented == set()
    assert {"API_ENABLED", "API_SECRET", "SQLALCHEMY_DATABASE_URI"} <= documented


def test_ci_runs_the_readme_commands() -> None:
    """``.ci/run`` reads the two commands from the README and runs them as they are."""
    proc = subprocess.run(
        ["bash", str(CI), "--readme-commands"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    demo, test = proc.stdout.splitlines()
    # The demo as written, made to stop by itself; the test command untouched.
    assert re.fullmatch(re.escape(DEMO_COMMAND) + r" --port 0 --exit-after \d+", demo), demo
    assert test == TEST_COMMAND
    ci = CI.read_text(encoding="utf-8")
    # In a fresh virtualenv, with nothing allowed to skip.
    assert 'python3 -m venv "$work/venv"' in ci
    assert "FLASK_STATUS_REQUIRE_DATABASES=1" in ci and "FLASK_STATUS_REQUIRE_BROWSER=1" in ci
    assert "skipped" in ci and "--junitxml" in ci


@pytest.fixture(scope="module")
def venv_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    venv = tmp_path_factory.mktemp("readme") / "venv"
    make_venv(venv)
    env = clean_env(venv)
    env.pop("DEMO_DATABASE_URL", None)
    return env


def _which_python(env: dict[str, str]) -> str:
    out = subprocess.run(
        ["sh", "-c", "command -v python"], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def test_test_command_install_step(venv_env: dict[str, str]) -> None:
    install = readme_commands()[1].split(" && ")[0]
    assert install == "python -m pip install -e '.[test]'"
    assert _which_python(venv_env).startswith(venv_env["VIRTUAL_ENV"])
    proc = subprocess.run(
        ["sh", "-c", install],
        cwd=ROOT,
        env=venv_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    check = subprocess.run(
        [
            "sh",
            "-c",
            "python -c 'import flask_server_status, pytest, playwright, psycopg, pymysql;"
            " print(flask_server_status.__version__)'",
        ],
        cwd="/",
        env=venv_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stderr
    import flask_server_status

    assert check.stdout.strip() == flask_server_status.__version__


def test_demo_command_runs_serves_and_exits(venv_env: dict[str, str], tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'demo.db'}"
    line = readme_commands()[0] + f" --port 0 --exit-after 8 --traffic 20 --database {database}"
    proc = subprocess.Popen(
        ["sh", "-c", line],
        cwd=ROOT,
        env=venv_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    output: list[str] = []
    try:
        assert proc.stdout is not None
        page_url = None
        for out_line in proc.stdout:
            output.append(out_line)
            match = re.match(r"\s+status page\s+(http://\S+)", out_line)
            if match:
                page_url = match.group(1)
                break
        assert page_url, "".join(output) + (proc.stderr.read() if proc.stderr else "")
        page = requests.get(page_url, timeout=10)
        assert page.status_code == 200
        for name in ("Product catalogue", "Search", "Checkout", "Home"):
            assert name in page.text
        summary = requests.get(page_url + "/summary.json", timeout=10).json()
        checkout = next(c for c in summary["components"] if c["rule"] == "/api/checkout")
        # 90 days of history, with the synthetic outage of three hours ago on its
        # UTC day (yesterday's, just after midnight).
        assert len(checkout["days"]) == 90
        assert sum(day["total"] for day in checkout["days"]) > 10_000
        outage_day = (datetime.now(timezone.utc) - timedelta(hours=3)).strftime("%Y-%m-%d")
        assert next(d for d in checkout["days"] if d["date"] == outage_day)["failure"] > 0
        # Read on through the same buffered file (communicate() would skip what
        # it has already read ahead); the demo ends by itself (--exit-after).
        output.append(proc.stdout.read())
        err = proc.stderr.read() if proc.stderr else ""
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    text = "".join(output)
    assert proc.returncode == 0, text + err
    assert re.search(r"History: [\d,]+ requests over 90 days written in [\d.]+ s\.", text), text
    assert re.search(r"admin\s+http://127\.0\.0\.1:\d+/admin/ .*user admin\s+password \S+", text)
    assert "Authorization: Bearer " in text
    assert re.search(r"Stopped; flushed \d+ requests\.", text), text
    # The recent hours are there minute by minute, for every route: the minute
    # strips are alive from the first view, not grey.
    engine = sa.create_engine(database)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT r.rule, l.minute, SUM(l.count), SUM(CASE WHEN l.outcome = 1"
                    " THEN l.count ELSE 0 END) FROM flask_status_log l"
                    " JOIN flask_status_route r ON r.id = l.route_id GROUP BY r.rule, l.minute"
                )
            ).all()
    finally:
        engine.dispose()
    now = datetime.now(timezone.utc).replace(second=0, microsecond=0, tzinfo=None)
    recent = [now - timedelta(minutes=m) for m in range(2, 5 * 60)]
    by_rule: dict[str, dict[datetime, tuple[int, int]]] = {}
    for rule, minute, total, failed in rows:
        if isinstance(minute, str):  # SQLite hands back text
            minute = datetime.fromisoformat(minute)
        by_rule.setdefault(rule, {})[minute.replace(tzinfo=None)] = (int(total), int(failed))
    for rule in ("/", "/api/products", "/api/search", "/api/checkout", "/health"):
        missing = [m for m in recent if m not in by_rule.get(rule, {})]
        assert not missing, (rule, missing[:5])
    # Checkout's scheduled outage three hours ago is still there, minute by minute.
    checkout = by_rule["/api/checkout"]
    outage = [checkout[now - timedelta(minutes=m)] for m in range(3 * 60 - 12, 3 * 60)]
    assert all(failed * 2 > total for total, failed in outage), outage


# -- every Python block of the README runs ----------------------------------------

API_TOKEN = "tSx0L5exSjiPqqXs"  # the README's example secret
README_PORT = "http://127.0.0.1:5000"  # where the README's API calls go

#: Imports and names a fragment assumes from the blocks around it.
BASE = """
from flask import Flask
from flask_admin import Admin
from flask_server_status import FlaskStatus

app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///status.db"
app.config["SECRET_KEY"] = "change-me"
"""
WITH_ADMIN = BASE + "admin = Admin(app)\n"
ACCESS = """
from types import SimpleNamespace
from flask import Flask, redirect, request, url_for
from flask_admin import Admin, AdminIndexView
from flask_server_status import FlaskStatus

# Flask-Login's current_user, as it is for a visitor who has not logged in.
current_user = SimpleNamespace(is_authenticated=False, is_admin=False)
app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///status.db"
app.config["SECRET_KEY"] = "change-me"

@app.route("/login")
def login():
    return "Log in"
"""

#: Appended to every example: serve the app on loopback, print the port, then
#: flush when the test says so, with a bare status.flush() as the README shows.
SERVE = '''

# -- added by tests/test_readme.py ---------------------------------------------
import json as _json
import sys as _sys
import threading as _threading

from werkzeug.serving import make_server as _make_server

if "app" not in globals():
    app = create_app()
if "status" not in globals():
    status = app.extensions.get("flask-server-status") or FlaskStatus(app)
if not any(rule.rule == "/" for rule in app.url_map.iter_rules()):
    @app.route("/")
    def index():
        """
        # Index
        The landing page.
        """
        return "Welcome to API!"
_server = _make_server("127.0.0.1", 0, app, threaded=True)
_threading.Thread(target=_server.serve_forever, daemon=True).start()
print(_json.dumps({"port": _server.server_port}), flush=True)
for _line in _sys.stdin:
    if _line.strip() == "flush":
        print(_json.dumps({"flushed": status.flush()}), flush=True)
_server.shutdown()
'''


def readme_python_blocks() -> list[tuple[str, str]]:
    """(the heading above it, its code) for every ```python block, in order."""
    text = README.read_text(encoding="utf-8")
    blocks = []
    for match in re.finditer(r"^```python\n(.*?)^```", text, re.M | re.S):
        headings = re.findall(r"^#+ (.+)$", text[: match.start()], re.M)
        blocks.append((headings[-1], match.group(1)))
    return blocks


def without_admin(code: str) -> str:
    """The factory example as its comment says to use it without Flask-Admin."""
    lines = [line for line in code.splitlines() if not re.search(r"\bAdmin\b|admin\.", line)]
    return "\n".join(lines).replace("admin=admin, ", "") + "\n"


#: heading -> (what runs before the block, what the test checks). Checks:
#: "app" serves and counts; "admin" also lists the routes in the admin;
#: "login" expects the admin to send visitors to /login; "api" also runs the
#: README's requests and curl calls against it; "postgresql" runs on the test
#: PostgreSQL server.
EXAMPLES: dict[str, tuple[str, set[str]]] = {
    "flask-server-status": (WITH_ADMIN, {"app", "admin"}),
    "With Flask-Admin": ("", {"app", "admin"}),
    "Without Flask-Admin": (BASE, {"app"}),
    "Application factory, your own `db`, which routes": ("", {"app", "admin", "factory"}),
    "Setting it up": ("", {"app", "admin"}),
    "Access": (ACCESS, {"app", "login"}),
    "Overview, and the admin's landing page": (BASE, {"app", "admin", "landing"}),
    "Customising": (WITH_ADMIN, {"app", "admin"}),
    "The configure API": (BASE, {"app", "api"}),
    "With requests (the original project's calls, unchanged)": ("", {"client"}),
    "Several hosts sharing one PostgreSQL": (BASE, {"app", "postgresql"}),
}


def example_cases() -> list[Any]:
    cases = []
    for heading, code in readme_python_blocks():
        prelude, checks = EXAMPLES.get(heading, ("", {"unknown"}))
        if "client" in checks:
            continue  # runs inside the "api" case, against its server
        cases.append(pytest.param(heading, prelude + code, checks, id=heading[:40]))
        if "factory" in checks:
            cases.append(
                pytest.param(
                    heading, without_admin(code), checks - {"admin"}, id="factory without admin"
                )
            )
    return cases


def test_every_python_block_of_the_readme_is_run() -> None:
    headings = [heading for heading, _ in readme_python_blocks()]
    assert len(headings) >= 9
    unknown = [h for h in headings if h not in EXAMPLES]
    assert not unknown, f"README blocks with no runner in EXAMPLES: {unknown}"


class Example:
    """A README example run as a script: served on loopback, flushed on demand."""

    def __init__(self, code: str, cwd: Path) -> None:
        script = cwd / "example.py"
        script.write_text(code + SERVE, encoding="utf-8")
        self.proc = subprocess.Popen(
            [sys.executable, str(script)],
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env(),
        )
        self.url = f"http://127.0.0.1:{self._answer()['port']}"

    def _answer(self) -> dict[str, Any]:
        assert self.proc.stdout is not None and self.proc.stderr is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(30)
            raise AssertionError(self.proc.stderr.read())
        return dict(json.loads(line))

    def flush(self) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.write("flush\n")
        self.proc.stdin.flush()
        return int(self._answer()["flushed"])

    def stop(self) -> str:
        """End the script; its stderr."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        err = self.proc.stderr.read() if self.proc.stderr else ""
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        return err


def run_client_examples(url: str, cwd: Path) -> None:
    """The README's API calls, requests then curl, sent to ``url`` instead of port 5000."""
    code = dict(readme_python_blocks())["With requests (the original project's calls, unchanged)"]
    script = cwd / "client.py"
    script.write_text(code.replace(README_PORT, url), encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=cwd
    )
    assert proc.returncode == 0, proc.stderr
    renamed, deleted = proc.stdout.splitlines()
    assert renamed.startswith("200 {'message': 'Route modified', 'route': {"), renamed
    assert "'name': 'Hello World!'" in renamed
    assert deleted == "200 {'message': 'Route deleted'}"

    text = README.read_text(encoding="utf-8")
    section = re.search(r"^### With curl\n(.*?)(?=^#)", text, re.M | re.S)
    assert section
    curl = re.search(r"^```sh\n(.*?)^```", section.group(1), re.M | re.S)
    assert curl
    proc = subprocess.run(
        ["sh", "-c", curl.group(1).replace(README_PORT, url)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    bodies = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert bodies[0]["message"] == "Route modified"
    assert bodies[0]["route"]["name"] == "Hello World!"
    assert bodies[1] == {"message": "Route deleted"}
    assert [r["name"] for r in bodies[2]["routes"] if r["rule"] == "/"] == ["Hello World!"]


@pytest.mark.parametrize(("heading", "code", "checks"), example_cases())
def test_readme_python_example(heading: str, code: str, checks: set[str], tmp_path: Path) -> None:
    assert "unknown" not in checks, f"no runner for the README block under {heading!r}"
    pg_url = None
    if "postgresql" in checks:
        pg_url = configured_server_url("postgresql")
        if pg_url is None:
            pytest.skip("set FLASK_STATUS_TEST_POSTGRES_URL to run the PostgreSQL example")
        # The README's placeholders become the test server, for the app and the bind alike.
        code = re.sub(r"postgresql\+psycopg://[^\"]*…[^\"]*", pg_url, code)
        assert "…" not in code
        drop_status_tables(pg_url)
    if "api" in checks:
        assert f'"{API_TOKEN}"' in code
    example = Example(code, tmp_path)
    try:
        for _ in range(2):
            r = requests.get(example.url + "/", timeout=10)
            assert r.status_code == 200, r.text
            assert r.text == "Welcome to API!"
        page = requests.get(example.url + "/status", timeout=10)
        assert page.status_code == 200
        assert "Index" in page.text
        if "factory" in checks:
            assert requests.get(example.url + "/api/orders", timeout=10).json() == {"orders": []}
        # The README's bare status.flush(), outside any app context: it writes
        # what was counted (our page's own requests are not) and says how many.
        flushed = example.flush()
        assert flushed == (3 if "factory" in checks else 2)
        assert example.flush() == 0
        summary = requests.get(example.url + "/status/summary.json", timeout=10).json()
        index = next(c for c in summary["components"] if c["rule"] == "/")
        assert index["name"] == "Index"
        admin = requests.get(
            example.url + "/admin/flask-status/routes/", timeout=10, allow_redirects=False
        )
        if "landing" in checks:  # the admin's own index page, now the status summary
            landing = requests.get(example.url + "/admin/", timeout=10)
            assert landing.status_code == 200
            assert 'id="flask-status-summary"' in landing.text, landing.text[:500]
            assert "Routes failing now" in landing.text
            # This process's buffer (our own page's requests wait there, uncounted).
            assert re.search(r"\d+ requests? waiting for the next flush", landing.text)
        if "admin" in checks:
            assert admin.status_code == 200, admin.text[:500]
            assert "Index" in admin.text
        elif "login" in checks:
            assert admin.status_code == 302
            location = urlsplit(admin.headers["Location"])
            assert location.path == "/login"
            assert parse_qs(location.query)["next"] == [admin.url]
        else:
            assert admin.status_code == 404
        if "api" in checks:
            run_client_examples(example.url, tmp_path)
    finally:
        err = example.stop()
        if pg_url is not None:
            drop_status_tables(pg_url)
    assert example.proc.returncode == 0, err
    assert "Traceback" not in err, err
