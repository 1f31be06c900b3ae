"""The README's two commands run as written, so the README cannot drift from what works.

Both run through ``sh -c`` with the exact line from the README, in a fresh
virtual environment (``--system-site-packages``, so the dependencies already
installed are reused and the install stays offline and quick) whose ``python``
comes first on ``PATH``: the README's ``python -m pip install -e …`` then
installs into that environment, never into the one running these tests.
The demo line gets ``--port 0 --exit-after … --database …`` appended, the
test line is cut before ``&&`` (running pytest from pytest would recurse).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests

from flask_server_status.config import DEFAULTS

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
    for image in ("docs/status-desktop.png", "docs/admin-routes.png"):
        assert f"]({image})" in text
        assert (ROOT / image).is_file(), image


def test_every_config_key_is_in_the_readme_table() -> None:
    """Each ``FLASK_STATUS_*`` key the package reads has a row in the one table."""
    text = README.read_text(encoding="utf-8")
    table = re.search(r"<!-- config-table -->\n(.*?)<!-- /config-table -->", text, re.S)
    assert table, "README.md has no config table between <!-- config-table --> markers"
    documented = set(re.findall(r"`((?:FLASK_STATUS_)?[A-Z][A-Z_]+)`", table.group(1)))
    source = "\n".join(
        path.read_text(encoding="utf-8") for path in (ROOT / "flask_server_status").rglob("*.py")
    )
    read = set(re.findall(r"[\"'](FLASK_STATUS_[A-Z][A-Z_]*[A-Z])[\"']", source))
    assert read, "found no config keys in the package"
    assert read - documented == set()
    assert DEFAULTS.keys() <= documented
    assert {"API_ENABLED", "API_SECRET", "SQLALCHEMY_DATABASE_URI"} <= documented


def test_ci_runs_the_readme_test_command() -> None:
    assert TEST_COMMAND in CI.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def venv_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    venv = tmp_path_factory.mktemp("readme") / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
        check=True,
        timeout=120,
    )
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.pop("DEMO_DATABASE_URL", None)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
    env["VIRTUAL_ENV"] = str(venv)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
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
    started = time.monotonic()
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
    assert time.monotonic() - started < 120
