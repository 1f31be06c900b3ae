"""``flask status ...`` commands, through Flask's CLI runner, on every database backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa
from flask import Flask
from helpers import MakeApp, route_row, slot, write_counts

from flask_server_status import get_state
from flask_server_status.models import Log, LogDay, LogHour


def run(app: Flask, *args: str, input: str | None = None) -> tuple[int, str]:
    result = app.test_cli_runner().invoke(args=["status", *args], input=input)
    return result.exit_code, result.output


def row_counts(app: Flask) -> dict[str, int]:
    state = get_state(app)
    with state.engine.connect() as conn:
        return {
            model.__tablename__: conn.execute(
                sa.select(sa.func.count()).select_from(model)
            ).scalar_one()
            for model in (Log, LogHour, LogDay)
        }


def test_group_is_on_app_cli(sqlite_url: str, make_app: MakeApp) -> None:
    app, _ = make_app(sqlite_url)
    code, out = run(app, "--help")
    assert code == 0
    for command in (
        "init-db",
        "routes",
        "incidents",
        "rename",
        "describe",
        "hide",
        "show",
        "delete",
        "flush",
        "prune",
    ):
        assert command in out


def test_init_db_and_routes_without_traffic(db_url: str, make_app: MakeApp) -> None:
    app, _ = make_app(db_url)
    code, out = run(app, "init-db")
    assert code == 0, out
    assert out.strip().endswith("; 4 routes.")
    code, out = run(app, "routes")
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].split() == [
        "RULE",
        "NAME",
        "STATUS",
        "24H",
        "7D",
        "30D",
        "90D",
        "HIDDEN",
        "LAST",
        "DATA",
    ]
    index = next(line for line in lines if line.startswith("/ "))
    assert index.split() == ["/", "Index", "no_data", "-", "-", "-", "-", "no", "-"]
    assert "<unmatched>" not in out


def test_flush_then_routes_show_status_and_uptime(db_url: str, make_app: MakeApp) -> None:
    app, _ = make_app(db_url)
    client = app.test_client()
    for _ in range(9):
        client.get("/")
    client.get("/code/500")
    code, out = run(app, "flush")
    assert (code, out) == (0, "Flushed 10 requests.\n")
    assert run(app, "flush") == (0, "Flushed 0 requests.\n")

    code, out = run(app, "routes", "--json")
    assert code == 0, out
    data = {r["rule"]: r for r in json.loads(out)}
    assert data["/"]["status"] == "operational"
    assert data["/"]["uptime"] == {"24h": 100.0, "7d": 100.0, "30d": 100.0, "90d": 100.0}
    # One failed request is too few (FLASK_STATUS_MIN_REQUESTS = 10) for an outage.
    assert data["/code/<int:code>"]["status"] == "degraded_performance"
    assert data["/code/<int:code>"]["uptime"]["24h"] == 0.0
    assert data["/boom"]["status"] == "no_data"
    assert data["/boom"]["uptime"]["90d"] is None

    code, out = run(app, "routes")
    line = next(line for line in out.splitlines() if line.startswith("/code/"))
    assert line.split()[:8] == [
        "/code/<int:code>",
        "Any",
        "code",
        "degraded_performance",
        "0.00%",
        "0.00%",
        "0.00%",
        "0.00%",
    ]


def test_rename_describe_and_errors(db_url: str, make_app: MakeApp) -> None:
    app, _ = make_app(db_url)
    assert run(app, "rename", "/", "Home <page>") == (0, "Renamed / to 'Home <page>'.\n")
    assert run(app, "describe", "/", "Where it starts.") == (0, "Description of / set.\n")
    row = route_row(app, "/")
    assert (row.name, row.doc, row.custom_name, row.custom_doc) == (
        "Home <page>",
        "Where it starts.",
        True,
        True,
    )

    code, out = run(app, "rename", "/nope", "X")
    assert code == 1
    assert out == "Error: No route with rule '/nope'.\n"
    code, out = run(app, "rename", "/", "   ")
    assert code == 1
    assert out.startswith("Error: ")
    assert route_row(app, "/").name == "Home <page>"
    code, out = run(app, "rename", "/", "x" * 101)
    assert code == 1
    assert route_row(app, "/").name == "Home <page>"
    # The internal row of unmatched requests is nobody's to rename.
    assert run(app, "rename", "<unmatched>", "Mine")[0] == 1


def test_invisible_characters_are_refused(db_url: str, make_app: MakeApp) -> None:
    app, _ = make_app(db_url)
    assert run(app, "rename", "/", "Pay\u202emoc.live") == (
        1,
        "Error: The name cannot contain invisible or text-direction characters (found U+202E).\n",
    )
    assert run(app, "describe", "/", "zero\u200bwidth") == (
        1,
        "Error: The description cannot contain invisible or text-direction characters"
        " (found U+200B).\n",
    )
    row = route_row(app, "/")
    assert (row.name, row.doc, row.custom_name, row.custom_doc) == (
        "Index",
        "The landing page.",
        False,
        False,
    )
    # Visible non-ASCII text is fine, right-to-left scripts included.
    assert run(app, "rename", "/", "מצב ✓ Ünïcode")[0] == 0
    assert route_row(app, "/").name == "מצב ✓ Ünïcode"


def test_hide_show(db_url: str, make_app: MakeApp) -> None:
    app, _ = make_app(db_url)
    assert run(app, "hide", "/", "/boom") == (0, "Hid 2 routes.\n")
    assert run(app, "hide", "/") == (0, "Hid 0 routes.\n")
    code, out = run(app, "routes")
    assert "Index" not in out and "/boom" not in out
    code, out = run(app, "routes", "--all")
    index = next(line for line in out.splitlines() if line.startswith("/ "))
    assert index.split()[-2:] == ["yes", "-"]
    # One unknown rule and nothing changes.
    code, out = run(app, "show", "/", "/missing")
    assert (code, out) == (1, "Error: No route with rule '/missing'.\n")
    assert route_row(app, "/").hidden
    assert run(app, "show", "/", "/boom") == (0, "Showed 2 routes.\n")
    assert not route_row(app, "/").hidden


def test_delete_purges_history_and_hides(db_url: str, make_app: MakeApp) -> None:
    app, status = make_app(db_url)
    client = app.test_client()
    for _ in range(3):
        client.get("/")
    client.get("/items/1")
    status.flush(app)
    assert row_counts(app) == {
        "flask_status_log": 2,
        "flask_status_log_hour": 2,
        "flask_status_log_day": 2,
    }

    code, out = run(app, "delete", "/", input="n\n")
    assert code == 1 and "Aborted!" in out
    assert not route_row(app, "/").hidden

    code, out = run(app, "delete", "/", "--yes")
    assert code == 0, out
    assert out.startswith("Deleted /: history purged, route hidden")
    assert route_row(app, "/").hidden
    assert row_counts(app) == {
        "flask_status_log": 1,
        "flask_status_log_hour": 1,
        "flask_status_log_day": 1,
    }
    assert run(app, "delete", "/nope", "--yes") == (1, "Error: No route with rule '/nope'.\n")


def test_prune_deletes_only_rows_past_retention(db_url: str, make_app: MakeApp) -> None:
    app, _ = make_app(
        db_url,
        config={"FLASK_STATUS_MINUTE_RETENTION_DAYS": 7, "FLASK_STATUS_HOUR_RETENTION_DAYS": 100},
    )
    state = get_state(app)
    # A write prunes by itself at most once an hour; have that happen now, on
    # the empty tables, so the old rows written below stay for the command.
    state.store.maybe_prune()
    now = int(datetime.now(timezone.utc).timestamp() // 60)
    old = now - 10 * 1440  # 10 days ago: past the minute retention only
    ancient = now - 120 * 1440  # 120 days ago: past both
    write_counts(
        app,
        {
            ("/", now, 200): slot(5, 10.0, max_ms=20.0, bucket=0),
            ("/", old, 200): slot(3, 10.0, bucket=0),
            ("/", ancient, 500): slot(2, 10.0, bucket=0),
        },
    )
    assert row_counts(app) == {
        "flask_status_log": 3,
        "flask_status_log_hour": 3,
        "flask_status_log_day": 3,
    }
    code, out = run(app, "prune")
    assert code == 0, out
    # 2 minute rows (10 and 120 days old) + 1 hour row (120 days old).
    assert out == (
        "Deleted 3 rows (minute rows older than 7 days, hour rows older than 100 days).\n"
    )
    # Day roll-ups are kept for ever: the 90-day strip still has its history.
    assert row_counts(app) == {
        "flask_status_log": 1,
        "flask_status_log_hour": 2,
        "flask_status_log_day": 3,
    }
    assert run(app, "prune")[1].startswith("Deleted 0 rows")


def test_incidents(db_url: str, make_app: MakeApp) -> None:
    app, _ = make_app(db_url)
    assert run(app, "incidents") == (0, "No incidents.\n")
    start = datetime.now(timezone.utc).replace(second=0, microsecond=0) - timedelta(hours=2)
    first = int(start.timestamp() // 60)
    counts: dict[tuple[str, datetime | int, int], list[float]] = {}
    for m in range(3):  # three failing minutes in a row: one incident of 3 minutes
        counts[("/boom", first + m, 500)] = slot(4, 10.0, bucket=0)
        counts[("/boom", first + m, 200)] = slot(1, 10.0, bucket=0)
    for m in range(3, 8):  # then five minutes of traffic without failures close it
        counts[("/boom", first + m, 200)] = slot(1, 10.0, bucket=0)
    write_counts(app, counts)
    code, out = run(app, "incidents")
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].split() == ["START", "END", "DURATION", "RULE", "NAME", "FAILURES", "REQUESTS"]
    assert len(lines) == 3
    cells = lines[2].split()
    assert cells[0:3] == [start.strftime("%Y-%m-%d"), start.strftime("%H:%M"), "UTC"]
    end = start + timedelta(minutes=3)
    assert cells[3:6] == [end.strftime("%Y-%m-%d"), end.strftime("%H:%M"), "UTC"]
    assert cells[6:] == ["3", "min", "/boom", "boom", "12", "15"]


def test_real_flask_command_on_the_demo(tmp_path: Path) -> None:
    """``flask --app demo_app status …`` as the README shows it, in a real process."""
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, DEMO_DATABASE_URL=f"sqlite:///{tmp_path / 'demo.db'}")
    env.pop("FLASK_APP", None)

    def flask(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "flask", "--app", "demo_app", "status", *args],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    done = flask("init-db")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("; 6 routes.")
    done = flask("rename", "/health", "Health check")
    assert (done.returncode, done.stdout) == (0, "Renamed /health to 'Health check'.\n")
    done = flask("routes")
    assert done.returncode == 0, done.stderr
    health = next(line for line in done.stdout.splitlines() if line.startswith("/health "))
    assert health.split()[:4] == ["/health", "Health", "check", "no_data"]
