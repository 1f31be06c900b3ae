"""Time of the status page and ``summary.json`` as the stored history grows.

50 routes with 90 days of history on SQLite, written through the normal write
path (:meth:`Store.write`, so the hour and day roll-ups are kept as a flush
keeps them), in two sizes:

* **1 thousand** requests: one request in each of 1,000 minute slots spread
  over the routes, the 90 days and the last hour;
* **14,900** requests: two in each of the 7,450 slots the biggest size fills
  (one succeeds, one fails: the same rows as 100 million, so the comparison
  isolates traffic);
* **100 million** requests: 7,500 slots (per route, one minute of each of the
  90 days and each of the last 60 minutes), about 13,400 requests each, one
  in fifty of them failing.

The page reads day and hour roll-ups and at most the last hour of minute
rows, so both sizes must take the same time within noise, and the median
must stay at or below 50 ms. Each answer is fetched in-process through
Flask's test client (WSGI, no socket), so the figure is the extension's own
work: queries, statuses, rendering, ETag.

``python bench/page.py``; ``--smoke`` runs a few rounds of a small case in
seconds (CI); ``--json PATH`` also writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import median, table, write_section
from flask import Flask

from flask_server_status import FlaskStatus
from flask_server_status.config import HISTOGRAM_SIZE

ROUTES = 50
DAYS = 90
LIMIT_MS = 50.0


def make_app(url: str, routes: int, cache_seconds: int = 5) -> tuple[Flask, FlaskStatus]:
    app = Flask("bench_page")
    app.config.update(
        SQLALCHEMY_DATABASE_URI=url,
        FLASK_STATUS_FLUSH_INTERVAL=3600,
        FLASK_STATUS_PAGE_CACHE_SECONDS=cache_seconds,
    )
    for n in range(routes):

        def view(n: int = n) -> str:
            return f"route {n}"

        view.__doc__ = f"# Route {n}\nThe route number {n} of the benchmark."
        app.add_url_rule(f"/r{n}", f"r{n}", view)
    return app, FlaskStatus(app)


def _slot(count: int) -> list[float]:
    hist = [0] * HISTOGRAM_SIZE
    hist[2] = count  # 10-25 ms
    return [count, 18.0 * count, 24.0, *hist]


def fill(status: FlaskStatus, app: Flask, now: datetime, requests: int, routes: int) -> int:
    """Write ``requests`` requests' worth of history; return the number of slots."""
    state = status.state(app)
    ids = state.route_ids()
    rules = [f"/r{n}" for n in range(routes)]
    this_minute = int(now.timestamp()) // 60
    # Per route: one minute (noon UTC) of each of the 90 days, then the last hour.
    today_noon = int(now.replace(hour=12, minute=0, second=0, microsecond=0).timestamp()) // 60
    minutes = [today_noon - 1440 * d for d in range(1, DAYS)]
    minutes += [this_minute - m for m in range(60)]
    slots = [(rule, minute) for rule in rules for minute in minutes]
    if requests < len(slots):
        step = len(slots) / requests
        slots = [slots[int(i * step)] for i in range(requests)]
    per_slot, extra = divmod(requests, len(slots))
    counts: dict[tuple[str, int, int], list[float]] = {}
    for i, (rule, minute) in enumerate(slots):
        count = per_slot + (1 if i < extra else 0)
        # Every slot with two or more requests has a failing row too, so sizes
        # that fill the same slots also store the same number of rows.
        failed = max(1, count // 50) if count >= 2 else 0
        counts[(rule, minute, 200)] = _slot(count - failed)
        if failed:
            counts[(rule, minute, 503)] = _slot(failed)
    # One write per 2,000 keys, as a busy flush would, through the normal path.
    items = list(counts.items())
    written = 0
    for start in range(0, len(items), 2000):
        written += state.store.write(dict(items[start : start + 2000]), ids)
    assert written == requests, (written, requests)
    return len(slots)


def measure(client: Any, path: str, rounds: int) -> tuple[float, int]:
    """Median milliseconds of ``rounds`` GETs (after one warm-up) and the body size."""
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200
    return median(times), len(response.data)


def run(requests: int, routes: int, rounds: int, workdir: Path) -> dict[str, Any]:
    """Cold (page cache off: every GET queries and renders) and warm (default cache)."""
    url = f"sqlite:///{workdir / f'page-{requests}.db'}"
    result: dict[str, Any] = {"requests": requests, "routes": routes}
    for mode, cache_seconds in (("cold", 0), ("warm", 5)):
        app, status = make_app(url, routes, cache_seconds)
        if mode == "cold":
            result["slots"] = fill(status, app, datetime.now(timezone.utc), requests, routes)
        client = app.test_client()
        result[f"{mode}_page_ms"], result["page_bytes"] = measure(client, "/status", rounds)
        result[f"{mode}_summary_ms"], result["summary_bytes"] = measure(
            client, "/status/summary.json", rounds
        )
        status.state(app).buffer.stop(flush=False)
        status.state(app).engine.dispose()
    return result


def profile_cold(rounds: int = 5) -> int:
    """Print where a cold rendering spends its time (cProfile, by cumulative time).

    Cold means the page cache is off, so every GET queries and renders.
    """
    import cProfile
    import pstats

    workdir = Path(tempfile.mkdtemp(prefix="bench-page-"))
    try:
        app, status = make_app(f"sqlite:///{workdir / 'page.db'}", ROUTES, cache_seconds=0)
        fill(status, app, datetime.now(timezone.utc), 100_000_000, ROUTES)
        client = app.test_client()
        for path in ("/status", "/status/summary.json"):
            client.get(path)  # warm the interpreter, statement caches, templates
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(rounds):
                client.get(path)
            profiler.disable()
            print(f"\n## {path}: {rounds} cold GETs, 50 routes x 90 days\n")
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(
                r"flask_server_status|sqlite3|strftime|json|jinja2.environment", 25
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a seconds-long check for CI")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="instead: profile cold renders of the page and summary.json (100 M requests)",
    )
    args = parser.parse_args()
    if args.profile:
        return profile_cold()

    # The middle size fills the same slots (and rows) as 100 million, two
    # requests each: 6,700 times less traffic isolates the cost of traffic.
    slots = DAYS - 1 + 60
    sizes = [1_000, 2 * ROUTES * slots, 100_000_000]
    routes, rounds = ROUTES, args.rounds
    if args.smoke:
        sizes, routes, rounds = [1_000, 2 * 5 * slots, 1_000_000], 5, 3

    workdir = Path(tempfile.mkdtemp(prefix="bench-page-"))
    try:
        results = [run(size, routes, rounds, workdir) for size in sizes]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    rows = [
        (
            f"{r['requests']:,}",
            r["routes"],
            f"{r['slots']:,}",
            r["cold_page_ms"],
            r["warm_page_ms"],
            f"{r['page_bytes'] / 1024:,.0f} KiB",
            r["cold_summary_ms"],
            r["warm_summary_ms"],
            f"{r['summary_bytes'] / 1024:,.0f} KiB",
        )
        for r in results
    ]
    text = table(
        [
            "history (requests)",
            "routes",
            "minute slots",
            "page cold ms",
            "page warm ms",
            "page size",
            "summary cold ms",
            "summary warm ms",
            "summary size",
        ],
        rows,
    )
    print(text)
    small, big = results[-2], results[-1]
    lines = []
    for mode in ("cold", "warm"):
        worst = max(max(r[f"{mode}_page_ms"], r[f"{mode}_summary_ms"]) for r in results)
        lines.append(
            f"{mode}: {big['requests']:,} vs {small['requests']:,} requests (same slots):"
            f" page x{big[f'{mode}_page_ms'] / small[f'{mode}_page_ms']:.2f},"
            f" summary.json x{big[f'{mode}_summary_ms'] / small[f'{mode}_summary_ms']:.2f};"
            f" slowest median {worst:.1f} ms (limit {LIMIT_MS:.0f} ms):"
            f" {'OK' if worst <= LIMIT_MS else 'over the limit'}"
        )
    verdict = "\n".join(lines)
    print(verdict)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    if not args.smoke:
        write_section(
            "page",
            "Status page and summary.json as history grows",
            f"Median of {rounds} in-process GETs (Flask test client, SQLite file, "
            f"{routes} routes, 90 days + the last hour). Cold: "
            "`FLASK_STATUS_PAGE_CACHE_SECONDS=0`, every GET queries and renders; warm: the "
            "default page cache, each GET checks the database fingerprint (two aggregate "
            f"queries) and reuses the rendering.\n\n{text}\n\n{verdict}\n",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
