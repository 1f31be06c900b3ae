"""Time of the status page and ``summary.json`` as the stored history grows.

50 routes with 90 days of history on SQLite, written through the normal write
path (:meth:`Store.write`: minute rows and their hour and day roll-ups, then
the retention prune, as flushes leave them), in three sizes:

* **1 thousand** requests: one in each of 1,000 slots spread over the routes
  and the 90 days;
* **same rows**: every slot of the biggest size, one or two requests each (the
  same rows as 100 million with 130 times less traffic: it isolates the cost
  of traffic from the cost of rows);
* **100 million** requests, as a busy app stores them: every minute of the
  last 7 days (the minute retention) for every route, 15 requests a minute
  with a failing one in about a third of the minutes, and one five-minute
  outage (503s) per route in the week; the 83 older days as one minute per
  hour (a busy app's minute rows of those days are pruned by now, and the day
  roll-ups, which are what the page reads, come out the same shape).

Each answer is fetched in-process through Flask's test client (WSGI, no
socket), so the figure is the extension's own work. Three ways to look, for
the page and for ``summary.json``:

* **after new data**: one request flushed before each GET, as in a running app
  where every flush changes the current minute. This is what a reader
  usually gets, and what the 50 ms target is about;
* **unchanged**: GETs with nothing new, answered from the kept rendering;
* **first**: the first GET of a new app (process): nothing is kept yet, so it
  reads everything, a week of minute rows included.

``python bench/page.py``; ``--smoke`` runs a small case in seconds (CI);
``--json PATH`` also writes the figures as JSON; ``--profile`` prints where an
"after new data" GET spends its time.
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
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import median, table, write_section
from flask import Flask

from flask_server_status import FlaskStatus
from flask_server_status.config import HISTOGRAM_SIZE

ROUTES = 50
DAYS = 90
RECENT_DAYS = 7
PER_MINUTE = 15
LIMIT_MS = 50.0
Slots = dict[tuple[str, int, int], int]


def make_app(url: str, routes: int) -> tuple[Flask, FlaskStatus]:
    app = Flask("bench_page")
    app.config.update(SQLALCHEMY_DATABASE_URI=url, FLASK_STATUS_FLUSH_INTERVAL=3600)
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


def busy_history(routes: int, days: int, recent_days: int, requests: int) -> Slots:
    """``{(rule, epoch minute, status): requests}`` of a busy app, ``requests`` in all."""
    rng = random.Random(90)
    this_minute = int(time.time()) // 60
    recent = recent_days * 1440
    slots: Slots = {}
    for n in range(routes):
        rule = f"/r{n}"
        outage = this_minute - (n * 197) % (recent - 10) - 6
        for minute in range(this_minute - recent + 1, this_minute + 1):
            if outage <= minute < outage + 5:
                slots[(rule, minute, 200)] = 1
                slots[(rule, minute, 503)] = PER_MINUTE - 1
            elif rng.random() < 0.3:
                slots[(rule, minute, 200)] = PER_MINUTE - 1
                slots[(rule, minute, rng.choice((404, 500)))] = 1
            else:
                slots[(rule, minute, 200)] = PER_MINUTE
    # Older days: one minute an hour, holding what is left of the total.
    old = [
        (f"/r{n}", minute)
        for n in range(routes)
        for minute in range(this_minute - days * 1440 + 1, this_minute - recent + 1)
        if minute % 60 == 0
    ]
    per_slot, extra = divmod(requests - sum(slots.values()), len(old))
    for i, (rule, minute) in enumerate(old):
        slots[(rule, minute, 200)] = per_slot + (1 if i < extra else 0)
    return slots


def sizes(routes: int, days: int, recent_days: int, big: int) -> dict[str, Slots]:
    busy = busy_history(routes, days, recent_days, big)
    same_rows = dict.fromkeys(busy, 1)
    keys = sorted({(rule, minute) for rule, minute, _ in busy})
    step = len(keys) / 1000
    sparse = {(*keys[int(i * step)], 200): 1 for i in range(1000)}
    return {"1 thousand": sparse, "same rows": same_rows, f"{big / 1e6:,.0f} million": busy}


def fill(url: str, routes: int, slots: Slots) -> int:
    """Write ``slots`` through the store, 5,000 keys a write, then prune; return requests."""
    app, status = make_app(url, routes)
    state = status.state(app)
    ids = state.route_ids()
    items = [(key, _slot(count)) for key, count in slots.items()]
    written = 0
    for start in range(0, len(items), 5000):
        written += state.store.write(dict(items[start : start + 5000]), ids)
    state.store.prune()
    state.buffer.stop(flush=False)
    state.engine.dispose()
    assert written == sum(slots.values()), (written, sum(slots.values()))
    return written


def timed(get: Callable[[], Any], before: Callable[[], Any] | None, rounds: int) -> float:
    """Median milliseconds of ``rounds`` calls of ``get``, each after ``before``."""
    times = []
    for _ in range(rounds):
        if before is not None:
            before()
        start = time.perf_counter()
        response = get()
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, response.status_code
    return median(times)


def measure_path(url: str, routes: int, path: str, rounds: int, first_rounds: int) -> dict:
    """First, after-new-data and unchanged medians of GET ``path``, and the body size."""
    fresh: list[Any] = []

    def new_app() -> None:
        fresh[:] = [make_app(url, routes)[0].test_client()]

    first = timed(lambda: fresh[0].get(path), new_app, first_rounds)

    app, status = make_app(url, routes)
    state = status.state(app)
    client = app.test_client()
    ids = state.route_ids()
    turn = iter(range(10**9))

    def new_data() -> None:
        # One request on the next route, flushed: what every flush brings.
        n = next(turn)
        state.store.write({(f"/r{n % routes}", int(time.time()) // 60, 200): _slot(1)}, ids)

    client.get(path)  # the app's first GET: measured above
    new = timed(lambda: client.get(path), new_data, rounds)
    unchanged = timed(lambda: client.get(path), None, rounds)
    size = len(client.get(path).data)
    state.buffer.stop(flush=False)
    return {"first": first, "new": new, "unchanged": unchanged, "bytes": size}


def measure(url: str, routes: int, rounds: int, first_rounds: int) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for path, name in (("/status", "page"), ("/status/summary.json", "summary")):
        figures = measure_path(url, routes, path, rounds, first_rounds)
        for mode in ("first", "new", "unchanged"):
            result[f"{mode}_{name}_ms"] = figures[mode]
        result[f"{name}_bytes"] = figures["bytes"]
    return result


def profile_new_data(rounds: int = 20) -> int:
    """Print where an "after new data" GET spends its time (cProfile, own time)."""
    import cProfile
    import pstats

    workdir = Path(tempfile.mkdtemp(prefix="bench-page-"))
    try:
        url = f"sqlite:///{workdir / 'page.db'}"
        fill(url, ROUTES, busy_history(ROUTES, DAYS, RECENT_DAYS, 100_000_000))
        app, status = make_app(url, ROUTES)
        state = status.state(app)
        ids = state.route_ids()
        client = app.test_client()
        for path in ("/status", "/status/summary.json"):
            client.get(path)
            profiler = cProfile.Profile()
            for n in range(rounds):
                state.store.write({(f"/r{n}", int(time.time()) // 60, 200): _slot(1)}, ids)
                profiler.enable()
                client.get(path)
                profiler.disable()
            print(f"\n## {path}: {rounds} GETs after new data, 50 routes x 90 days\n")
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a seconds-long check for CI")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--first-rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--profile", action="store_true", help="instead: profile GETs after new data"
    )
    args = parser.parse_args()
    if args.profile:
        return profile_new_data()

    routes, days, recent_days, big = ROUTES, DAYS, RECENT_DAYS, 100_000_000
    rounds, first_rounds = args.rounds, args.first_rounds
    if args.smoke:
        routes, days, recent_days, big, rounds, first_rounds = 5, 10, 1, 1_000_000, 3, 1

    workdir = Path(tempfile.mkdtemp(prefix="bench-page-"))
    results = []
    try:
        for n, (label, slots) in enumerate(sizes(routes, days, recent_days, big).items()):
            url = f"sqlite:///{workdir / f'page-{n}.db'}"
            started = time.perf_counter()
            requests = fill(url, routes, slots)
            took = time.perf_counter() - started
            print(f"{label}: {requests:,} requests written in {took:.0f} s")
            results.append(
                {
                    "history": label,
                    "requests": requests,
                    "routes": routes,
                    **measure(url, routes, rounds, first_rounds),
                }
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    rows = [
        (
            r["history"],
            f"{r['requests']:,}",
            r["new_page_ms"],
            r["unchanged_page_ms"],
            r["first_page_ms"],
            f"{r['page_bytes'] / 1024:,.0f} KiB",
            r["new_summary_ms"],
            r["unchanged_summary_ms"],
            r["first_summary_ms"],
            f"{r['summary_bytes'] / 1024:,.0f} KiB",
        )
        for r in results
    ]
    text = table(
        [
            "history",
            "requests",
            "page after new data ms",
            "page unchanged ms",
            "page first ms",
            "page size",
            "summary after new data ms",
            "summary unchanged ms",
            "summary first ms",
            "summary size",
        ],
        rows,
    )
    print(text)
    same, big_result = results[1], results[2]
    worst = max(max(r["new_page_ms"], r["new_summary_ms"]) for r in results)
    verdict = (
        f"After new data, {big_result['history']} vs the same rows with little traffic:"
        f" page x{big_result['new_page_ms'] / same['new_page_ms']:.2f},"
        f" summary.json x{big_result['new_summary_ms'] / same['new_summary_ms']:.2f};"
        f" slowest median {worst:.1f} ms (limit {LIMIT_MS:.0f} ms):"
        f" {'OK' if worst <= LIMIT_MS else 'over the limit'}"
    )
    print(verdict)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    if not args.smoke:
        write_section(
            "page",
            "Status page and summary.json as history grows",
            f"Medians of {rounds} in-process GETs ({first_rounds} for a first GET), Flask test"
            f" client, SQLite file, {routes} routes, 90 days. After new data: one request"
            " flushed before each GET, as every flush does in a running app; unchanged: the"
            " kept rendering; first: a new app, which reads everything (see"
            " `flask_server_status/snapshots.py`).\n\n"
            f"{text}\n\n{verdict}\n",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
