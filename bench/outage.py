"""Requests cost the same whether the status database answers or not.

The request path only queues an event in memory; the database is written by
a background flush. So a locked or unreachable database must not slow a
single request down. ``tests/test_outage.py`` proves the mechanism (no
request thread ever takes a database connection, the counts survive the
outage exactly); this script measures what a client sees, which a test must
not assert: wall-clock times depend on the machine and its load.

It serves a mix of answers (200, 201, 404, 500, 503) from a real threaded
server on loopback, with the extension on a SQLite file flushing every
0.5 s, in rounds that alternate "database free" and "database locked" (another
connection holding ``BEGIN EXCLUSIVE``, so every flush waits out its busy
timeout and fails). It reports the median and the 99th percentile of the
request latency in each state and their ratios, locked / free, taken within
each round and then the median of the rounds, so drifting load cancels out.
A request that waited on the lock would take at least the 0.2 s busy timeout:
a p99 ratio near 1 means none did. ``python bench/outage.py``; ``--smoke``
for a seconds-long run.
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import median, table, write_section
from flask import Flask
from werkzeug.serving import make_server

from flask_server_status import FlaskStatus, get_state

#: (path, status the app answers)
MIX = [("/", 200), ("/code/201", 201), ("/code/503", 503), ("/boom", 500), ("/missing", 404)]
#: Target: the locked database's p99 at most this many times the free one's.
TARGET_P99_RATIO = 1.5


def make_app(db_file: Path) -> Flask:
    """The app, with its instance folder (the extension's journal) beside ``db_file``."""
    # The server's access log and the tracebacks of /boom are not the figures.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    app = Flask("bench_outage", instance_path=str(db_file.parent / "instance"))
    app.logger.disabled = True
    app.config.update(
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{db_file}",
        FLASK_STATUS_FLUSH_INTERVAL=0.5,
        # A flush must fail fast on the lock, as in tests/test_outage.py.
        SQLALCHEMY_ENGINE_OPTIONS={"connect_args": {"timeout": 0.2}},
    )

    @app.route("/")
    def index() -> str:
        return "ok"

    @app.route("/code/<int:code>")
    def code(code: int) -> tuple[str, int]:
        return f"code {code}", code

    @app.route("/boom")
    def boom() -> str:
        raise RuntimeError("boom on purpose")

    FlaskStatus(app)
    return app


def serve(port: int, n: int) -> list[float]:
    """Send ``n`` requests of :data:`MIX` on one connection; their latencies in ms."""
    latencies = []
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        for i in range(n):
            path, expected = MIX[i % len(MIX)]
            started = time.perf_counter()
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            latencies.append((time.perf_counter() - started) * 1000)
            if response.status != expected:
                raise SystemExit(f"{path} answered {response.status}, not {expected}")
    finally:
        conn.close()
    return latencies


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


def run(rounds: int, per_state: int, workdir: Path) -> dict[str, Any]:
    db_file = workdir / "status.db"
    app = make_app(db_file)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_port
    buffer = get_state(app).buffer
    holder = sqlite3.connect(str(db_file), isolation_level=None, timeout=5)
    results: dict[str, Any] = {"rounds": []}
    sent = 0
    try:
        serve(port, 50)  # warm up: routes registered, tables created, first flush
        sent += 50
        for _ in range(rounds):
            free = serve(port, per_state)
            failures = buffer.failures
            holder.execute("BEGIN EXCLUSIVE")
            try:
                # At least as many requests, and for as long as it takes a flush to fail.
                locked: list[float] = []
                deadline = time.monotonic() + 10
                while len(locked) < per_state or (
                    buffer.failures == failures and time.monotonic() < deadline
                ):
                    locked += serve(port, 50)
            finally:
                holder.execute("COMMIT")
            sent += len(free) + len(locked)
            results["rounds"].append(
                {
                    "free_median_ms": median(free),
                    "free_p99_ms": p99(free),
                    "locked_median_ms": median(locked),
                    "locked_p99_ms": p99(locked),
                    "median_ratio": median(locked) / median(free),
                    "p99_ratio": p99(locked) / p99(free),
                    "failed_flushes": buffer.failures - failures,
                }
            )
        # Everything reaches the database once it is free: nothing lost, nothing doubled.
        buffer.flush()
        with sqlite3.connect(str(db_file)) as check:
            query = "SELECT COALESCE(SUM(count), 0) FROM flask_status_log"
            stored = check.execute(query).fetchone()
        results["sent"] = sent
        results["stored"] = int(stored[0])
    finally:
        holder.close()
        server.shutdown()
        server.server_close()
        buffer.stop(flush=False)
        get_state(app).engine.dispose()
    rows = results["rounds"]
    results["median_ratio"] = median(r["median_ratio"] for r in rows)
    results["p99_ratio"] = median(r["p99_ratio"] for r in rows)
    results["failed_flushes"] = sum(r["failed_flushes"] for r in rows)
    return results


def report(results: dict[str, Any], per_state: int) -> str:
    rows = results["rounds"]
    body = table(
        ["round", "free median ms", "free p99 ms", "locked median ms", "locked p99 ms",
         "median ratio", "p99 ratio", "failed flushes"],
        [
            [n + 1, r["free_median_ms"], r["free_p99_ms"], r["locked_median_ms"],
             r["locked_p99_ms"], r["median_ratio"], r["p99_ratio"], r["failed_flushes"]]
            for n, r in enumerate(rows)
        ],
    )  # fmt: skip
    verdict = "OK" if results["p99_ratio"] <= TARGET_P99_RATIO else "OVER TARGET"
    return (
        f"{len(rows)} rounds of {per_state:,} requests with the database free, then as many"
        " or more (until a flush has failed) with it locked (BEGIN EXCLUSIVE held by another"
        " connection; every flush meanwhile waits out its 0.2 s busy timeout and fails).\n\n"
        f"{body}\n\n"
        f"Locked / free, median of the rounds: median latency x{results['median_ratio']:.2f},"
        f" p99 x{results['p99_ratio']:.2f} (target at most x{TARGET_P99_RATIO}): {verdict}."
        f" {results['failed_flushes']} flushes failed during the locks; afterwards"
        f" {results['stored']:,} of {results['sent']:,} requests were stored."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="2 short rounds, no docs")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--requests", type=int, default=2000, help="per state and round")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    if args.smoke:
        args.rounds, args.requests = 2, 200
    workdir = Path(tempfile.mkdtemp(prefix="bench-outage-"))
    try:
        results = run(args.rounds, args.requests, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    text = report(results, args.requests)
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    if not args.smoke:
        write_section("outage", "Requests while the database is locked (bench/outage.py)", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
