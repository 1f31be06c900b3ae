"""Each benchmark script in ``bench/`` runs in its seconds-long ``--smoke`` mode.

Not measurements (the figures of a smoke run mean nothing): this keeps the
scripts from rotting, and checks the invariants they exist to show - one
flush is the same few statements whatever the traffic or the number of
keys, unknown paths are one bucket - on real data. The peers (prometheus-flask-exporter,
Flask-MonitoringDashboard) are only measured when ``bench/.env`` exists;
bare Flask against this extension always is.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from conftest import configured_server_url
from helpers import run_bench, server_problem

# Only a server we are told about (see tests/conftest.py): never a stray one on 5432.
POSTGRES_URL = configured_server_url("postgresql")


def postgres_url() -> str | None:
    """The PostgreSQL URL when one is configured and answers (required in CI)."""
    if POSTGRES_URL is None:
        return None
    problem = server_problem(POSTGRES_URL)
    if problem is not None:
        if os.environ.get("FLASK_STATUS_REQUIRE_DATABASES") == "1":
            pytest.fail(f"PostgreSQL not reachable at {POSTGRES_URL.split('@')[-1]}: {problem}")
        return None
    return POSTGRES_URL


def test_overhead_smoke(tmp_path: Path) -> None:
    results, stdout = run_bench("overhead", tmp_path)
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
        # Served something; how fast is bench/overhead.py's business, not a test's.
        assert all(v["median"] > 0 for v in results["gunicorn"].values())
    else:
        assert "gunicorn mode skipped" in stdout or "gunicorn" not in results
    assert "| status" in stdout


def test_flush_smoke(tmp_path: Path) -> None:
    url = postgres_url()
    results, stdout = run_bench("flush", tmp_path, "--postgres-url", url or "")
    assert set(results) == ({"SQLite", "PostgreSQL"} if url else {"SQLite"})
    for db, figures in results.items():
        # A flush is a fixed handful of statements (bench/README.md lists
        # them), so the count is the same whether the buffer holds 1,000 or
        # 10,000 requests, 10 keys or 100: executemany batches the rows.
        # What matters is that it does not grow, not the exact figure.
        assert set(figures["requests"]) == {"1000", "10000"}, db
        assert set(figures["keys"]) == {"10", "100"}, db
        counts = {
            **{("requests", size): row["statements"] for size, row in figures["requests"].items()},
            **{("keys", keys): row["statements"] for keys, row in figures["keys"].items()},
        }
        assert len(set(counts.values())) == 1, (db, counts)
        assert 3 <= counts[("requests", "1000")] <= 8, (db, counts)
        for size, row in figures["requests"].items():
            assert row["keys"] == 250, (db, size)
        for keys, row in figures["keys"].items():
            assert row["keys"] == int(keys), (db, keys)
    assert "SQL statements" in stdout


def test_memory_smoke(tmp_path: Path) -> None:
    rows, stdout = run_bench("memory", tmp_path)
    assert [row["requests"] for row in rows] == [1_000, 10_000, 20_000]
    last = rows[-1]
    # 20,000 distinct unknown paths: one key per minute, never one per path.
    assert max(row["buffer keys"] for row in rows) <= 2
    assert last["flask_status_route"] == 3  # "/", "/items/<id>", "<unmatched>"
    assert 1 <= last["flask_status_log"] <= 2
    assert last["flask_status_log_day"] <= 2
    assert "404" in stdout or "answered 404" in stdout


def test_outage_smoke(tmp_path: Path) -> None:
    results, stdout = run_bench("outage", tmp_path)
    assert len(results["rounds"]) == 2
    # Each locked phase lasted until a flush had failed on the lock ...
    assert all(r["failed_flushes"] >= 1 for r in results["rounds"]), results["rounds"]
    # ... and every request reached the database afterwards, once.
    assert results["stored"] == results["sent"] >= 850
    # The latencies themselves are figures, not assertions.
    assert results["p99_ratio"] > 0
    assert "Locked / free" in stdout


def test_demo_verdicts_smoke(tmp_path: Path) -> None:
    """The demo's day judged as README.md's "Why these defaults" says, on a short run.

    One day of the demo's history: the scheduled Checkout outage three hours
    ago is one incident spanning its 14 minutes, Checkout's bad minute an hour
    and the background failures open none, and the banner is green most of the
    time (the full run's figures are in README.md; a smoke run samples every
    3rd minute of 6 hours, so the bound is loose).
    """
    results, stdout = run_bench("demo_verdicts", tmp_path)
    assert results["days"] == 1
    assert results["judged_minutes"] == 120
    [outage] = results["outages"]
    assert (outage["rule"], outage["minutes"], outage["incidents"]) == ("/api/checkout", 14, 1)
    assert outage["incident_minutes"] == [14]
    assert results["spurious_incidents"] == []
    assert results["incidents"] == 1
    # Red while it lasts: the banner was a major outage at some sampled minute.
    assert results["banner"].get("major_outage", 0) >= 2
    assert results["green_share_outside_outages"] >= 0.7, results["banner_outside_outages"]
    # The rule it replaced opens an incident for every flaky minute.
    assert results["old_rule"]["incidents"] > results["incidents"]
    assert "spurious incidents (no scheduled outage): 0" in stdout
