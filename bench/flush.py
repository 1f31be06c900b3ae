"""Time and SQL statements of one flush, as traffic and as the number of keys grow.

Two sweeps, on SQLite and (when a URL is given) PostgreSQL:

1. **Requests**: 1 thousand to 1 million requests spread over the same
   50 routes x 5 status codes (250 keys) within one minute. A flush writes
   one row per key, so its cost must stay flat however many requests the
   buffer holds.
2. **Keys**: 10 to 10,000 (routes x 5 codes, 10 requests each). The cost
   may grow with the keys, but no faster than linearly.

The buffer is filled through :meth:`Buffer.add` (what a request queues) and
drained as the background thread would each second; the timed part is
``buffer.flush()`` alone: taking the counts, building the rows, the upserts
of minute rows and hour and day roll-ups in one transaction. Statements are
counted with SQLAlchemy's ``before_cursor_execute`` event (an executemany is
one). Before each measured flush the status tables are emptied, so every
flush inserts its rows (the costlier case; later flushes of the same hour
update the roll-ups instead).

``python bench/flush.py`` (add ``--postgres-url URL`` or set
``FLASK_STATUS_TEST_POSTGRES_URL``); ``--smoke`` for a seconds-long check.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sqlalchemy as sa
from common import (
    buffered_keys,
    hold_drain_thread,
    median,
    release_drain_thread,
    table,
    write_section,
)
from flask import Flask

from flask_server_status import FlaskStatus
from flask_server_status.models import Base, Log, LogDay, LogHour

CODES = (200, 201, 404, 500, 503)
#: Most events the capture queue holds between two drains is 200,000.
DRAIN_EVERY = 100_000


class Bench:
    """One app with ``routes`` rules on one database, and a statement counter."""

    def __init__(self, url: str, routes: int, workdir: Path) -> None:
        if not url.startswith("sqlite"):
            _drop(url)
        self.url = url
        self.app = Flask("bench_flush", instance_path=str(workdir))
        self.app.config.update(SQLALCHEMY_DATABASE_URI=url, FLASK_STATUS_FLUSH_INTERVAL=3600)
        self.rules = [f"/r{i}" for i in range(routes)]
        for rule in self.rules:
            self.app.add_url_rule(rule, endpoint=rule, view_func=lambda: "ok")
        self.status = FlaskStatus(self.app)
        self.state = self.status.state(self.app)
        self.buffer = self.state.buffer
        # The flusher thread would drain and flush on its own; the benchmark
        # does both itself, at known times.
        hold_drain_thread(self.buffer)
        self.counting = False
        self.statements = 0
        sa.event.listen(self.state.engine, "before_cursor_execute", self._count)
        self.state.route_ids()  # sync the route rows once, outside the measurements
        self.fill(len(self.rules), 1)
        self.buffer.flush()  # the first flush also prunes (once an hour): warm-up

    def _count(self, *args: Any) -> None:
        if self.counting:
            self.statements += 1

    def clear(self) -> None:
        with self.state.engine.begin() as conn:
            for model in (Log, LogHour, LogDay):
                conn.execute(sa.delete(model))

    def fill(self, routes: int, requests_per_key: int) -> int:
        """Queue ``requests_per_key`` requests for each of ``routes`` x 5 codes."""
        add = self.buffer.add
        rules = self.rules[:routes]
        keys = [(rule, code) for rule in rules for code in CODES]
        total = len(keys) * requests_per_key
        done = 0
        for _ in range(requests_per_key):
            for rule, code in keys:
                add(rule, code, 0.004)
            done += len(keys)
            if done >= DRAIN_EVERY:
                self.buffer.drain()
                done = 0
        self.buffer.drain()
        return total

    def fill_requests(self, requests: int, routes: int = 50) -> int:
        """Queue ``requests`` requests round-robin over ``routes`` x 5 codes."""
        add = self.buffer.add
        keys = [(rule, code) for rule in self.rules[:routes] for code in CODES]
        count = len(keys)
        for i in range(requests):
            rule, code = keys[i % count]
            add(rule, code, 0.004)
            if i % DRAIN_EVERY == DRAIN_EVERY - 1:
                self.buffer.drain()
        self.buffer.drain()
        return requests

    def measure(self, fill: Any, expect_seconds: float) -> dict[str, float]:
        """Fill, then time one flush; filling waits so as not to straddle a minute."""
        self.clear()
        wait_for_minute(expect_seconds)
        requests = fill()
        keys = buffered_keys(self.buffer)
        self.statements = 0
        self.counting = True
        start = time.perf_counter()
        written = self.buffer.flush()
        elapsed = time.perf_counter() - start
        self.counting = False
        if written != requests:
            raise SystemExit(f"flushed {written} requests, queued {requests}")
        return {"ms": elapsed * 1000, "statements": self.statements, "keys": keys}

    def close(self) -> None:
        release_drain_thread(self.buffer)
        self.buffer.stop(flush=False)
        self.state.engine.dispose()
        if not self.url.startswith("sqlite"):
            _drop(self.url)


def _drop(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        Base.metadata.drop_all(conn)
    engine.dispose()


def wait_for_minute(seconds: float) -> None:
    """Sleep into the next minute if filling would not end within this one."""
    left = 60 - time.time() % 60
    if left < seconds + 1:
        time.sleep(left + 0.05)


def summarise(runs: list[dict[str, float]]) -> dict[str, float]:
    return {
        "ms": median(r["ms"] for r in runs),
        "statements": max(r["statements"] for r in runs),
        "keys": max(r["keys"] for r in runs),
    }


def run(url: str, sizes: list[int], key_counts: list[int], repeats: int, workdir: Path) -> Any:
    out: dict[str, Any] = {"requests": {}, "keys": {}}
    bench = Bench(url, max(50, max(key_counts) // len(CODES)), workdir)
    try:
        add_rate = 3e-6  # seconds per queued request, refined below
        for size in sizes:
            runs = []
            for _ in range(repeats):
                start = time.perf_counter()
                runs.append(
                    bench.measure(lambda size=size: bench.fill_requests(size), size * add_rate)
                )
                add_rate = max(add_rate, (time.perf_counter() - start) / size)
            out["requests"][size] = summarise(runs)
            print(f"  {size:>9,} requests: {out['requests'][size]}", flush=True)
        for keys in key_counts:
            routes = keys // len(CODES)
            per_key = 10
            runs = [
                bench.measure(
                    lambda routes=routes, n=per_key: bench.fill(routes, n),
                    keys * per_key * add_rate,
                )
                for _ in range(repeats)
            ]
            out["keys"][keys] = summarise(runs)
            print(f"  {keys:>9,} keys: {out['keys'][keys]}", flush=True)
    finally:
        bench.close()
    return out


def report(results: dict[str, Any]) -> str:
    parts = []
    for db, r in results.items():
        sizes = sorted(r["requests"])
        first, last = r["requests"][sizes[0]], r["requests"][sizes[-1]]
        parts.append(
            f"### {db}: one flush as the buffered requests grow (50 routes x 5 codes)\n\n"
            + table(
                ["requests buffered", "keys", "flush ms (median)", "SQL statements"],
                [
                    [n, int(v["keys"]), v["ms"], int(v["statements"])]
                    for n, v in sorted(r["requests"].items())
                ],
            )
            + f"\n\n{sizes[-1]:,} requests cost {last['ms'] / first['ms']:.2f}x the flush of"
            f" {sizes[0]:,} (flat = about 1)."
        )
        counts = sorted(r["keys"])
        small, big = r["keys"][counts[0]], r["keys"][counts[-1]]
        growth = (big["ms"] / small["ms"]) / (counts[-1] / counts[0])
        parts.append(
            f"### {db}: one flush as routes x status codes grow (10 requests per key)\n\n"
            + table(
                ["keys", "flush ms (median)", "µs per key", "SQL statements"],
                [
                    [k, v["ms"], v["ms"] * 1000 / k, int(v["statements"])]
                    for k, v in sorted(r["keys"].items())
                ],
            )
            + f"\n\n{counts[-1]:,} keys / {counts[0]:,} keys: time x{big['ms'] / small['ms']:.1f}"
            f" for x{counts[-1] / counts[0]:,.0f} keys ({growth:.2f} of linear); the last step,"
            f" {counts[-2]:,} to {counts[-1]:,} keys: time"
            f" x{big['ms'] / r['keys'][counts[-2]]['ms']:.1f} for x{counts[-1] / counts[-2]:,.0f}."
        )
    parts.append(
        "The statements of one flush, in one transaction: a read of the route rows whose"
        " ids it writes to (a restore may have moved them), a read of the routes' failure"
        " codes (changed by an operator in any process), the journal's record of the"
        " segments written (never twice), then the minute rows, hour and day roll-ups, each"
        " one batched additive upsert."
    )
    if "SQLite" in results:
        worst = max(v["ms"] for v in results["SQLite"]["requests"].values())
        verdict = "met" if worst <= 20 else f"missed by {worst - 20:.1f} ms"
        parts.append(
            f"Target: one flush of 50 routes x 5 codes at most 20 ms on SQLite: {verdict}"
            f" (slowest median {worst:.1f} ms)."
        )
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a seconds-long check, no docs")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("FLASK_STATUS_TEST_POSTGRES_URL"),
        help="PostgreSQL database to use (its flask_status_ tables are dropped)",
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    if args.smoke:
        sizes, key_counts, args.repeats = [1_000, 10_000], [10, 100], 2
    else:
        sizes = [1_000, 10_000, 100_000, 1_000_000]
        key_counts = [10, 100, 1_000, 10_000]

    workdir = Path(tempfile.mkdtemp(prefix="bench-flush-"))
    results: dict[str, Any] = {}
    try:
        print("SQLite ...", flush=True)
        sqlite = f"sqlite:///{workdir / 'status.db'}"
        results["SQLite"] = run(sqlite, sizes, key_counts, args.repeats, workdir)
        if args.postgres_url:
            print("PostgreSQL ...", flush=True)
            results["PostgreSQL"] = run(args.postgres_url, sizes, key_counts, args.repeats, workdir)
        else:
            print("PostgreSQL left out: no --postgres-url", file=sys.stderr)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    text = report(results)
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    if not args.smoke:
        write_section(
            "flush", "Flush cost (bench/flush.py)", text, env=("FLASK_STATUS_TEST_POSTGRES_URL",)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
