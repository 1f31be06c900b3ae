"""The built distributions carry what the package needs, and an installed wheel works.

The build runs on a copy of the source tree (so concurrent work in the
checkout is neither disturbed nor half-copied into ``build/``), through pip's
isolated build: its build requirements come from the configured package index.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tarfile
import textwrap
import time
import zipfile
from pathlib import Path

import pytest
import requests
from venvs import clean_env, make_venv

import flask_server_status

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DATA = (
    "flask_server_status/py.typed",
    "flask_server_status/templates/flask_status/page.html",
    "flask_server_status/templates/flask_status/history.atom.xml",
    "flask_server_status/templates/flask_status/badge.svg",
    "flask_server_status/static/flask_status/status.css",
    "flask_server_status/static/flask_status/status.js",
    "flask_server_status/openapi.json",
    "flask_server_status/templates/flask_status/admin/overview.html",
)
IGNORE = shutil.ignore_patterns(
    ".git",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    "*.pyc",
    ".*_cache",
    ".venv*",
    ".env",
    ".benchmarks",
    ".hypothesis",
    "instance",
    "*.db",
    "*.db-*",
    "test-artifacts",
)


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Build the sdist, and the wheel *from that sdist*, as ``python -m build`` does."""
    tmp = tmp_path_factory.mktemp("pkg")
    source = tmp / "src"
    shutil.copytree(ROOT, source, ignore=IGNORE)
    out = tmp / "dist"
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
        env=clean_env(),
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    wheels = list(out.glob("*.whl"))
    sdists = list(out.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, list(out.iterdir())
    return {"wheel": wheels[0], "sdist": sdists[0], "tmp": tmp, "src": source}


def test_version_is_in_one_place(dists: dict[str, Path]) -> None:
    version = flask_server_status.__version__
    assert dists["wheel"].name == f"flask_server_status-{version}-py3-none-any.whl"
    pyproject = (ROOT / "pyproject.toml").read_text()
    # pyproject reads it from the package (dynamic); no literal version anywhere else.
    assert 'version = { attr = "flask_server_status.__version__" }' in pyproject
    for config in (pyproject, (ROOT / "setup.cfg").read_text()):
        assert not re.search(r"^version\s*=\s*[\"'\d]", config, re.M)


def test_wheel_carries_templates_static_and_py_typed(dists: dict[str, Path]) -> None:
    with zipfile.ZipFile(dists["wheel"]) as wheel:
        names = set(wheel.namelist())
        for path in PACKAGE_DATA:
            assert path in names, path
            # Compared with the copy built from: others may be editing the checkout.
            assert wheel.read(path) == (dists["src"] / path).read_bytes(), path
        assert "flask_server_status/admin/__init__.py" in names
        assert not any(name.startswith("tests/") for name in names)
        meta = wheel.read(
            f"flask_server_status-{flask_server_status.__version__}.dist-info/METADATA"
        ).decode()
    assert "License-Expression: MIT" in meta
    assert "Classifier: Framework :: Flask" in meta
    assert "Classifier: Typing :: Typed" in meta
    requires = [line for line in meta.splitlines() if line.startswith("Requires-Dist:")]
    runtime = [line for line in requires if "extra ==" not in line]
    assert sorted(line.split()[1].split(">")[0].lower() for line in runtime) == [
        "flask",
        "flask-admin",
        "flask-httpauth",
        "flask-sqlalchemy",
        "sqlalchemy",
        "wtforms",
    ]
    # Runtime: lower bounds only, an upper bound would break users on the next release.
    assert not [line for line in runtime if "<" in line], runtime
    # The test extra: ranges known to work together, upper bounds included.
    test_extra = [line for line in requires if 'extra == "test"' in line]
    names = {re.split(r"[\[<>=;\s]", line.split()[1])[0].lower() for line in test_extra}
    assert {"pytest", "schemathesis", "openapi-spec-validator", "playwright"} <= names
    for line in test_extra:
        assert ">=" in line and "<" in line, line
    # The README is the long description.
    assert "python demo_app.py" in meta


def test_sdist_carries_package_data_docs_and_tests(dists: dict[str, Path]) -> None:
    with tarfile.open(dists["sdist"]) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    for path in (
        *PACKAGE_DATA,
        "README.md",
        "CHANGELOG.md",
        "LICENSE",
        "demo_app.py",
        "pyproject.toml",
        "tests/conftest.py",
        "tests/test_packaging.py",
        "docs/status-desktop.png",
    ):
        assert path in names, path
    assert not any(name.endswith((".pyc", ".db")) for name in names)


APP = textwrap.dedent(
    """
    import sys
    from flask import Flask
    from werkzeug.serving import make_server

    import flask_server_status
    from flask_server_status import FlaskStatus

    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///" + sys.argv[1]

    @app.route("/")
    def index():
        '''
        # Index
        The landing page.
        '''
        return "Welcome to API!"

    FlaskStatus(app)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    print(server.server_port, flask_server_status.__file__, flush=True)
    server.serve_forever()
    """
)


def test_installed_wheel_serves_page_and_stylesheet(dists: dict[str, Path]) -> None:
    tmp = dists["tmp"]
    venv = tmp / "venv"
    # A fresh environment whose dependencies come from the running
    # interpreter's site-packages (fast, offline, and right from inside a
    # virtualenv too); the package itself is installed from the wheel.
    python = make_venv(venv)
    outside = subprocess.run(
        [str(python), "-c", "import flask_server_status"],
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(venv),
    )
    # Before the wheel, the checkout (even installed editable) is out of reach.
    assert outside.returncode != 0 and "ModuleNotFoundError" in outside.stderr, outside
    proc = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--force-reinstall",
            "--no-index",
            str(dists["wheel"]),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=clean_env(venv),
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]

    workdir = tmp / "run"
    workdir.mkdir()
    (workdir / "app.py").write_text(APP)
    server = subprocess.Popen(
        [str(python), "app.py", str(workdir / "status.db")],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(venv),
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert line, server.stderr.read() if server.stderr else ""
        port, location = line.split()
        # The package imported is the wheel's copy inside the venv.
        assert Path(location).resolve().is_relative_to(venv.resolve()), location
        base = f"http://127.0.0.1:{port}"
        page = requests.get(f"{base}/status", timeout=10)
        assert page.status_code == 200
        assert "Index" in page.text
        links = re.findall(r'<link rel="stylesheet" href="([^"]+)"', page.text)
        assert links, page.text[:2000]
        css = requests.get(base + links[0], timeout=10)
        assert css.status_code == 200
        assert css.headers["Content-Type"].startswith("text/css")
        assert css.content == (dists["src"] / PACKAGE_DATA[4]).read_bytes()
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)
        for stream in (server.stdout, server.stderr):
            if stream is not None:
                stream.close()
    # Give SQLite's WAL files a moment to be released before tmp cleanup.
    time.sleep(0.1)
