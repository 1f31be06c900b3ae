"""Random unknown paths must not grow the buffer or the database.

A scanner hitting a million distinct made-up URLs is a normal day for a
public app. The extension counts every request that matched no route under
one key (``<unmatched>``, per minute and status), so the buffer holds a few
keys and the database a few rows per minute, whatever the paths.

The script sends ``--requests`` (default 1 million) requests to random unknown
paths straight through the app's WSGI callable, with the extension on a
SQLite file and its background thread running as in production, and at
checkpoints (1 k, 10 k, 100 k, ...) flushes and reports: keys in the buffer
before the flush, the process's resident memory, and the rows of each
status table. Run ``python bench/memory.py``; ``--smoke`` sends 20,000.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sqlalchemy as sa
from common import buffered_keys, table, write_section
from flask import Flask
from werkzeug.test import EnvironBuilder

from flask_server_status import FlaskStatus
from flask_server_status.models import Log, LogDay, LogHour, Route


def rss_mib() -> float:
    """Resident memory of this process now (not the peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def make_app(workdir: Path) -> Flask:
    app = Flask("bench_memory", instance_path=str(workdir))
    app.config.update(
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{workdir / 'status.db'}",
        FLASK_STATUS_FLUSH_INTERVAL=3600,
    )

    @app.route("/")
    def index() -> str:
        return "ok"

    @app.route("/items/<int:item_id>")
    def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    FlaskStatus(app)
    return app


def row_counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            model.__tablename__: conn.execute(
                sa.select(sa.func.count()).select_from(model)
            ).scalar_one()
            for model in (Route, Log, LogHour, LogDay)
        }


def run(requests: int, workdir: Path) -> list[dict[str, Any]]:
    app = make_app(workdir)
    status = app.extensions["flask-server-status"]
    state = status.state(app)
    base = EnvironBuilder(path="/").get_environ()
    rng = random.Random(7)
    statuses: dict[str, int] = {}

    def start_response(line: str, headers: Any, exc_info: Any = None) -> Callable[[bytes], None]:
        statuses[line] = statuses.get(line, 0) + 1
        return write  # WSGI's write(), which nothing here calls

    def write(data: bytes) -> None:
        return None

    checkpoints = []
    mark = 1_000
    while mark <= requests:
        checkpoints.append(mark)
        mark *= 10
    if not checkpoints or checkpoints[-1] != requests:
        checkpoints.append(requests)

    rows: list[dict[str, Any]] = []
    sent = 0
    written = 0
    started = time.perf_counter()
    for checkpoint in checkpoints:
        while sent < checkpoint:
            environ = dict(base)
            # A fresh made-up path each time: up to 3 segments of random hex.
            environ["PATH_INFO"] = "/" + "/".join(
                f"{rng.getrandbits(48):012x}" for _ in range(rng.randint(1, 3))
            )
            body = app(environ, start_response)
            for _ in body:
                pass
            body.close()  # type: ignore[attr-defined]  # Werkzeug's response iterable has one
            sent += 1
        state.buffer.drain()
        keys = buffered_keys(state.buffer)
        written += status.flush(app)
        rows.append(
            {
                "requests": sent,
                "buffer keys": keys,
                "RSS MiB": rss_mib(),
                **row_counts(state.engine),
                "seconds": time.perf_counter() - started,
            }
        )
        print(f"  {rows[-1]}", flush=True)
    if statuses != {"404 NOT FOUND": requests}:
        raise SystemExit(f"expected {requests} 404s, got {statuses}")
    if written != requests:
        raise SystemExit(f"flushed {written} requests, sent {requests}")
    state.buffer.stop(flush=False)
    state.engine.dispose()
    return rows


def report(rows: list[dict[str, Any]]) -> str:
    headers = list(rows[0])
    last = rows[-1]
    return (
        "### Requests to random unknown paths (every one a distinct made-up URL)\n\n"
        + table(headers, [[row[h] for h in headers] for row in rows])
        + f"\n\nAll {last['requests']:,} requests were answered 404 and flushed. The buffer"
        f" never held more than {max(r['buffer keys'] for r in rows)} key(s), and the minute"
        f" table ends with {last[Log.__tablename__]} row(s) after {last['seconds']:.0f} s:"
        " one key and one row per minute and status code, not one per path."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="20,000 requests, no docs")
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    if args.smoke:
        args.requests = 20_000
    workdir = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    try:
        rows = run(args.requests, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    text = report(rows)
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    if not args.smoke:
        write_section("memory", "Unknown paths stay one bucket (bench/memory.py)", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
