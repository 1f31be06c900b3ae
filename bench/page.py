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

Weight, for each history: the page's HTML, ``summary.json``, and what an open
page's refresh fetches a minute (``updates.json?since=<the minute it has>``
after one new flush), beside the whole compact series it loads once, the first
time a tooltip needs older numbers. Before this version the page weighed
1,367 KiB for 50 routes x 90 days (7,500 inline tooltips) and every open page
fetched summary.json, 613 KiB, each minute (``BEFORE`` below, measured with
the same command on the previous code).

``--caches`` measures, on the 100 million history, what each kept thing saves:
the page cache (``FLASK_STATUS_PAGE_CACHE_SECONDS`` 5 vs 0) and the snapshot
reader (vs a fresh read of everything per GET).

``python bench/page.py``; ``--smoke`` runs a small case in seconds (CI);
``--json PATH`` also writes the figures as JSON; ``--profile`` prints where an
"after new data" GET spends its time.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
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
#: Budgets of issue 16: the page's HTML and what a refresh fetches a minute.
PAGE_LIMIT_BYTES = 300 * 1024
REFRESH_LIMIT_BYTES = 30 * 1024
#: Before the split of page.py (same command, 50 routes x 90 days, 100 million).
BEFORE = {"page_bytes": 1_367 * 1024, "refresh_bytes": 613 * 1024}
#: Everything a row can show switched on: an objective (budget bar, burn rates) and a
#: latency threshold (p95 against it). The weight is measured with and without.
OBJECTIVE = {"FLASK_STATUS_SLO_TARGET": 99.9, "FLASK_STATUS_LATENCY_THRESHOLD_MS": 500}
Slots = dict[tuple[str, int, int], int]


def make_app(url: str, routes: int, **config: Any) -> tuple[Flask, FlaskStatus]:
    app = Flask("bench_page")
    app.config.update(SQLALCHEMY_DATABASE_URI=url, FLASK_STATUS_FLUSH_INTERVAL=60, **config)
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


def measure_path(
    url: str, routes: int, path: str, rounds: int, first_rounds: int
) -> dict[str, Any]:
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


def measure_refresh(url: str, routes: int) -> dict[str, int]:
    """Bytes an open page fetches: a minute's refresh after new data, and the whole series;
    and the page's HTML and that refresh again with :data:`OBJECTIVE` in force.

    Both apps read the same database and see the same flush, so the two weights
    differ only by what the objective and the threshold add to each row.
    """
    apps = [make_app(url, routes), make_app(url, routes, **OBJECTIVE)]
    clients = [app.test_client() for app, _ in apps]
    pages = [client.get("/status") for client in clients]
    assert all(page.status_code == 200 for page in pages)
    state = apps[0][1].state(apps[0][0])
    minute = int(time.time()) // 60
    since = time.strftime("%Y-%m-%dT%H:%M:00Z", time.gmtime((minute - 1) * 60))
    # A minute later: every route got requests in the new minute, flushed.
    state.store.write({(f"/r{n}", minute, 200): _slot(3) for n in range(routes)}, state.route_ids())
    deltas = [client.get(f"/status/updates.json?since={since}") for client in clients]
    full = clients[0].get("/status/updates.json")
    assert all(d.status_code == 200 and d.get_json()["full"] is False for d in deltas)
    assert full.status_code == 200 and full.get_json()["full"] is True
    for app, status in apps:
        status.state(app).buffer.stop(flush=False)
    return {
        "refresh_bytes": len(deltas[0].data),
        "series_bytes": len(full.data),
        "objective_page_bytes": len(pages[1].data),
        "objective_refresh_bytes": len(deltas[1].data),
    }


def measure(url: str, routes: int, rounds: int, first_rounds: int) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for path, name in (("/status", "page"), ("/status/summary.json", "summary")):
        figures = measure_path(url, routes, path, rounds, first_rounds)
        for mode in ("first", "new", "unchanged"):
            result[f"{mode}_{name}_ms"] = figures[mode]
        result[f"{name}_bytes"] = figures["bytes"]
    result.update(measure_refresh(url, routes))
    return result


def measure_caches(url: str, routes: int, rounds: int) -> list[tuple[Any, ...]]:
    """Medians (after new data, unchanged) of the page and summary.json, each kept thing off."""
    from flask_server_status.page.caching import parts_of
    from flask_server_status.page.memo import StripMemo
    from flask_server_status.snapshots import take_snapshot

    class Forgetful(StripMemo[Any]):
        def keep(self, key: Any, made: Any) -> None:
            pass  # nothing kept: every strip is made again

    out: list[tuple[Any, ...]] = []
    for label, config, what in (
        ("all kept (default)", {}, ""),
        ("no page cache (PAGE_CACHE_SECONDS=0)", {"FLASK_STATUS_PAGE_CACHE_SECONDS": 0}, ""),
        ("no row/strip memo", {}, "memo"),
        ("no snapshot reader (read all per GET)", {}, "reader"),
    ):
        row: list[Any] = [label]
        for path in ("/status", "/status/summary.json"):
            app, status = make_app(url, routes, **config)
            state = status.state(app)
            if what == "reader":

                def fresh_read(now: datetime | None = None, state: Any = state) -> Any:
                    return take_snapshot(state, now)

                state.reader.snapshot = fresh_read  # type: ignore[method-assign]
            if what == "memo":
                parts = parts_of(state)
                parts.rows, parts.entries = Forgetful(), Forgetful()
            client = app.test_client()
            ids = state.route_ids()
            turn = iter(range(10**9))

            def new_data(state: Any = state, ids: Any = ids, turn: Any = turn) -> None:
                n = next(turn)
                state.store.write({(f"/r{n % routes}", int(time.time()) // 60, 200): _slot(1)}, ids)

            def get(client: Any = client, path: str = path) -> Any:
                return client.get(path)

            get()
            row.append(timed(get, new_data, rounds))
            row.append(timed(get, None, rounds))
            state.buffer.stop(flush=False)
        out.append(tuple(row))
    return out


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
    parser.add_argument(
        "--caches", action="store_true", help="instead: what each cache saves (100 million)"
    )
    args = parser.parse_args()
    if args.profile:
        return profile_new_data()
    if args.caches:
        return caches_main(args.rounds)

    routes, days, recent_days, big = ROUTES, DAYS, RECENT_DAYS, 100_000_000
    rounds, first_rounds = args.rounds, args.first_rounds
    if args.smoke:
        routes, days, recent_days, big, rounds, first_rounds = 5, 10, 1, 1_000_000, 3, 1

    workdir = Path(tempfile.mkdtemp(prefix="bench-page-"))
    results = []
    # The machine may be shared: the load beside the figures says how far to trust the
    # milliseconds (the bytes do not depend on it).
    load_start = os.getloadavg()[0]
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
            r["new_summary_ms"],
            r["unchanged_summary_ms"],
            r["first_summary_ms"],
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
            "summary after new data ms",
            "summary unchanged ms",
            "summary first ms",
        ],
        rows,
    )
    weights = table(
        [
            "history",
            "page HTML",
            "page HTML, objective + threshold",
            "refresh per minute",
            "refresh, objective + threshold",
            "summary.json",
            "whole series (once)",
        ],
        [
            (
                r["history"],
                f"{r['page_bytes'] / 1024:,.0f} KiB",
                f"{r['objective_page_bytes'] / 1024:,.0f} KiB",
                f"{r['refresh_bytes'] / 1024:,.1f} KiB",
                f"{r['objective_refresh_bytes'] / 1024:,.1f} KiB",
                f"{r['summary_bytes'] / 1024:,.0f} KiB",
                f"{r['series_bytes'] / 1024:,.0f} KiB",
            )
            for r in results
        ],
    )
    print(text)
    print(weights)
    same, big_result = results[1], results[2]
    worst = max(max(r["new_page_ms"], r["new_summary_ms"]) for r in results)
    verdict = (
        f"After new data, {big_result['history']} vs the same rows with little traffic:"
        f" page x{big_result['new_page_ms'] / same['new_page_ms']:.2f},"
        f" summary.json x{big_result['new_summary_ms'] / same['new_summary_ms']:.2f};"
        f" slowest median {worst:.1f} ms (limit {LIMIT_MS:.0f} ms):"
        f" {'OK' if worst <= LIMIT_MS else 'over the limit'}"
    )
    heaviest = max(max(r["page_bytes"], r["objective_page_bytes"]) for r in results)
    refresh = max(max(r["refresh_bytes"], r["objective_refresh_bytes"]) for r in results)
    weight = (
        f"Weight, {routes} routes x {days} days, heaviest with or without an objective:"
        f" page {heaviest / 1024:,.0f} KiB"
        f" (before: {BEFORE['page_bytes'] / 1024:,.0f} KiB; limit {PAGE_LIMIT_BYTES // 1024} KiB),"
        f" refresh {refresh / 1024:,.1f} KiB a minute (before: summary.json,"
        f" {BEFORE['refresh_bytes'] / 1024:,.0f} KiB; limit {REFRESH_LIMIT_BYTES // 1024} KiB):"
        f" {'OK' if heaviest <= PAGE_LIMIT_BYTES and refresh <= REFRESH_LIMIT_BYTES else 'over'}"
    )
    verdict += "\n" + weight
    print(verdict)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    if not args.smoke:
        objective = ", ".join(f"`{key}` {value:g}" for key, value in OBJECTIVE.items())
        load = (
            f"Load average (1 min) at the start and the end of the run: {load_start:.1f} and"
            f" {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
            + (
                ": taken under load, so compare the ratios within this run."
                if load_start >= 1
                else "."
            )
        )
        write_section(
            "page",
            "Status page and summary.json as history grows",
            f"Medians of {rounds} in-process GETs ({first_rounds} for a first GET), Flask test"
            f" client, SQLite file, {routes} routes, 90 days. After new data: one request"
            " flushed before each GET, as every flush does in a running app; unchanged: the"
            " kept rendering; first: a new app, which reads everything (see"
            f" `flask_server_status/snapshots.py`). {load}\n\n"
            f"{text}\n\nWeight (bytes do not depend on the machine's load; objective +"
            f" threshold: {objective}):\n\n{weights}\n\n{verdict}\n",
        )
    return 0


def measure_strip_memo(url: str, routes: int, rounds: int = 30) -> tuple[float, float]:
    """Median ms to build the page's rows (context and ``row.html``) with and without the
    row/strip memo, interleaved.

    GETs are too noisy on a shared machine to show a few milliseconds; this
    times only what the memo changes, in one process, one flush before each pair.
    """
    from flask_server_status import i18n
    from flask_server_status.page import render
    from flask_server_status.page.memo import StripMemo

    app, status = make_app(url, routes)
    state = status.state(app)
    ids = state.route_ids()
    texts = i18n.texts("en")
    memo: StripMemo[Any] = StripMemo()
    kept, fresh = [], []
    with app.test_request_context("/status"):
        row_template = app.jinja_env.get_template("flask_status/row.html")

        def render_row(row: dict[str, Any]) -> str:
            return row_template.render(row=row, t=texts, status_classes=render.STATUS_CLASSES)

        def context(snapshot: Any, run: Any) -> None:
            render.page_context(snapshot, state.settings, texts, {}, render_row, run)

        first = memo.open("en")
        context(state.reader.snapshot(), first)
        first.close()
        for n in range(rounds):
            state.store.write({(f"/r{n % routes}", int(time.time()) // 60, 200): _slot(1)}, ids)
            snapshot = state.reader.snapshot()
            start = time.perf_counter()
            run = memo.open("en")
            context(snapshot, run)
            run.close()
            kept.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            context(snapshot, None)
            fresh.append((time.perf_counter() - start) * 1000)
    state.buffer.stop(flush=False)
    return median(kept), median(fresh)


def caches_main(rounds: int) -> int:
    """``--caches``: GET /status medians with each kept thing on and off."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-page-"))
    try:
        url = f"sqlite:///{workdir / 'page.db'}"
        fill(url, ROUTES, busy_history(ROUTES, DAYS, RECENT_DAYS, 100_000_000))
        rows = measure_caches(url, ROUTES, rounds)
        memo_ms = measure_strip_memo(url, ROUTES)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    text = table(
        [
            "what is kept",
            "page after new data ms",
            "page unchanged ms",
            "summary after new data ms",
            "summary unchanged ms",
        ],
        rows,
    )
    print(text)
    base = rows[0]
    for label, *figures in rows[1:]:
        ratios = ", ".join(f"x{f / b:.2f}" for f, b in zip(figures, base[1:], strict=True))
        print(f"{label}: {ratios} of the default (same columns)")
    print(
        f"The page's rows alone (context and row.html, interleaved): {memo_ms[0]:.1f} ms with"
        f" the row/strip memo, {memo_ms[1]:.1f} ms without (x{memo_ms[1] / memo_ms[0]:.2f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
