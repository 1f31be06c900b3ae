"""Each benchmark script in ``bench/`` runs in its seconds-long ``--smoke`` mode.

Not measurements (the figures of a smoke run mean nothing): this keeps the
scripts from rotting, and checks the invariants they exist to show - one
flush is three statements whatever the traffic, unknown paths are one
bucket - on real data. The peers (prometheus-flask-exporter,
Flask-MonitoringDashboard) are only measured when ``bench/.env`` exists;
bare Flask against this extension always is.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
DOCS = ROOT / "docs" / "benchmarks.md"
POSTGRES_URL = os.environ.get(
    "FLASK_STATUS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def run_script(name: str, tmp_path: Path, *args: str) -> tuple[Any, str]:
    """Run ``bench/<name>.py --smoke``; return its JSON results and its output."""
    out = tmp_path / f"{name}.json"
    before = DOCS.stat().st_mtime_ns if DOCS.exists() else None
    env = {k: v for k, v in os.environ.items() if k != "FLASK_STATUS_TEST_POSTGRES_URL"}
    proc = subprocess.run(
        [sys.executable, str(BENCH / f"{name}.py"), "--smoke", "--json", str(out), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # A smoke run must never overwrite the real figures.
    assert (DOCS.stat().st_mtime_ns if DOCS.exists() else None) == before
    return json.loads(out.read_text()), proc.stdout


def postgres_url() -> str | None:
    """The PostgreSQL URL when a server answers there (required in CI)."""
    try:
        engine = sa.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # any driver or network error means "not here"
        if os.environ.get("FLASK_STATUS_REQUIRE_DATABASES") == "1":
            pytest.fail(f"PostgreSQL not reachable at {POSTGRES_URL.split('@')[-1]}: {exc}")
        return None
    return POSTGRES_URL


def test_overhead_smoke(tmp_path: Path) -> None:
    results, stdout = run_script("overhead", tmp_path)
    client = results["client"]
    assert {"bare", "status"} <= set(client)
    assert client["bare"]["ratio"] == 1.0
    for name, figures in client.items():
        assert len(figures["rounds"]) == 2, name
        assert figures["median"] > 0, name
    # The WSGI loop ran for each contender (without valgrind in smoke mode).
    assert set(results["wsgi"]) == set(client)
    if shutil.which("wrk"):
        assert set(results["gunicorn"]) == {"bare", "status"}
        assert all(v["median"] > 100 for v in results["gunicorn"].values())
    else:
        assert "gunicorn mode skipped" in stdout or "gunicorn" not in results
    assert "| status" in stdout


def test_flush_smoke(tmp_path: Path) -> None:
    url = postgres_url()
    results, stdout = run_script("flush", tmp_path, "--postgres-url", url or "")
    assert set(results) == ({"SQLite", "PostgreSQL"} if url else {"SQLite"})
    for db, figures in results.items():
        # One flush is three statements (minute rows, hour and day roll-ups),
        # whether the buffer holds 1,000 or 10,000 requests, 10 keys or 100.
        for size, row in figures["requests"].items():
            assert row["statements"] == 3, (db, size)
            assert row["keys"] == 250, (db, size)
        for keys, row in figures["keys"].items():
            assert row["statements"] == 3, (db, keys)
            assert row["keys"] == int(keys), (db, keys)
    assert "SQL statements" in stdout


def test_memory_smoke(tmp_path: Path) -> None:
    rows, stdout = run_script("memory", tmp_path)
    assert [row["requests"] for row in rows] == [1_000, 10_000, 20_000]
    last = rows[-1]
    # 20,000 distinct unknown paths: one key per minute, never one per path.
    assert max(row["buffer keys"] for row in rows) <= 2
    assert last["flask_status_route"] == 3  # "/", "/items/<id>", "<unmatched>"
    assert 1 <= last["flask_status_log"] <= 2
    assert last["flask_status_log_day"] <= 2
    assert "404" in stdout or "answered 404" in stdout
