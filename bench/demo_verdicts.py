"""How the verdicts judge the demo: the banner minute by minute, and its incidents.

Not a speed benchmark: the figures behind the defaults of README.md's "Why these
defaults". Fills the demo's synthetic history (``demo_app.fill_history``, 90 days,
the last 6 hours minute by minute as the live traffic makes them) in a throwaway
SQLite file, stands the clock at each of those minutes in turn and counts the
banner's states; then matches the incidents of the minute retention with the
scheduled outages (how many incidents each outage gave, how many incidents no
outage explains), and counts how many incidents the old rule (any failing
minute, runs less than 3 minutes apart merged) would have opened::

    python bench/demo_verdicts.py                 # the figures of README.md
    python bench/demo_verdicts.py --smoke         # 1 day, every 3rd minute: seconds
    python bench/demo_verdicts.py --json out.json # the figures for a program too
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import demo_app
from flask_server_status import get_state, queries
from flask_server_status.config import read_settings
from flask_server_status.models import Log

#: Minutes judged: the part of the history written minute by minute, but its last.
JUDGED_MINUTES = demo_app.RECENT_HOURS * 60 - 1


def _minute(epoch_minute: int) -> datetime:
    return datetime.fromtimestamp(epoch_minute * 60, timezone.utc)


def measure(days: int, seed: int, step: int) -> dict[str, Any]:
    """Fill ``days`` of the demo's history and judge every ``step``-th recent minute."""
    with tempfile.TemporaryDirectory() as folder:
        app = demo_app.create_app(f"sqlite:///{folder}/demo.db")
        state = get_state(app)
        now_minute = int(time.time() // 60)
        started = time.perf_counter()
        written = demo_app.fill_history(app, days, seed=seed, now_minute=now_minute)
        took = time.perf_counter() - started
        print(f"history: {written:,} requests over {days} days in {took:.1f} s")
        now = _minute(now_minute)
        try:
            banner: collections.Counter[str] = collections.Counter()
            # Banner outside the scheduled outages (and the status window after each).
            quiet: collections.Counter[str] = collections.Counter()
            window = state.settings.status_window
            outage_minutes = {
                m
                for o in demo_app.plan_outages(days, now_minute, random.Random(seed))
                for m in range(o.start_minute, o.start_minute + o.minutes + window)
            }
            by_route: collections.Counter[tuple[str, str]] = collections.Counter()
            judged = range(JUDGED_MINUTES, 0, -step)
            for back in judged:
                routes = queries.route_statuses(state, now=now - timedelta(minutes=back))
                overall = queries.overall_status(r.status for r in routes)
                banner[overall] += 1
                if now_minute - back not in outage_minutes:
                    quiet[overall] += 1
                by_route.update((r.rule, r.status) for r in routes if r.status != "operational")

            week = now - timedelta(days=state.settings.minute_retention_days)
            found = queries.incidents(state, now=now, limit=None)
            planned = [
                o
                for o in demo_app.plan_outages(days, now_minute, random.Random(seed))
                if _minute(o.start_minute) >= week
            ]
            per_outage: list[dict[str, Any]] = []
            explained: set[int] = set()
            for outage in sorted(planned, key=lambda o: o.start_minute):
                start = _minute(outage.start_minute)
                end = start + timedelta(minutes=outage.minutes)
                mine = [
                    i
                    for i, incident in enumerate(found)
                    if incident.rule == outage.rule
                    and incident.start < end
                    and incident.end > start
                ]
                explained.update(mine)
                per_outage.append(
                    {
                        "rule": outage.rule,
                        "start": f"{start:%Y-%m-%d %H:%M}",
                        "minutes": outage.minutes,
                        "ratio": outage.ratio,
                        "incidents": len(mine),
                        "incident_minutes": [
                            int((found[i].end - found[i].start).total_seconds() // 60) for i in mine
                        ],
                    }
                )
            spurious = [
                f"{i.rule} {i.start:%Y-%m-%d %H:%M}, {i.failures}/{i.requests} failed"
                for n, i in enumerate(found)
                if n not in explained
            ]

            old = read_settings({"FLASK_STATUS_INCIDENT_MIN_FAILURES": 1})
            with state.engine.connect() as conn:
                failing = queries.failing_minutes(conn, old, Log.minute >= week)
            runs, last = 0, dict[int, datetime]()
            for route_id, minute, _failures, _requests in failing:
                if route_id not in last or minute - last[route_id] > timedelta(minutes=3):
                    runs += 1
                last[route_id] = minute
        finally:
            state.buffer.stop(flush=False)
            state.engine.dispose()
    return {
        "days": days,
        "seed": seed,
        "judged_minutes": len(judged),
        "banner": dict(banner),
        "green_share": banner["operational"] / len(judged),
        "banner_outside_outages": dict(quiet),
        "green_share_outside_outages": quiet["operational"] / max(1, sum(quiet.values())),
        "routes_not_operational": {f"{rule} {status}": n for (rule, status), n in by_route.items()},
        "outages": per_outage,
        "incidents": len(found),
        "spurious_incidents": spurious,
        "old_rule": {"failing_minutes": len(failing), "incidents": runs},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seed", type=int, default=1, help="seed of the history (1)")
    parser.add_argument(
        "--smoke", action="store_true", help="1 day of history, every 3rd minute judged"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the figures there as JSON")
    args = parser.parse_args()
    results = measure(1 if args.smoke else 90, args.seed, 3 if args.smoke else 1)
    banner = results["banner"]
    print(
        f"banner over {results['judged_minutes']} minutes: green"
        f" {banner.get('operational', 0)} ({results['green_share']:.0%}), {banner}"
    )
    print(
        f"  outside the scheduled outages: green {results['green_share_outside_outages']:.0%},"
        f" {results['banner_outside_outages']}"
    )
    print(f"  routes not operational (minutes): {results['routes_not_operational']}")
    print(f"incidents in the minute retention: {results['incidents']}")
    for outage in results["outages"]:
        print(
            f"  scheduled outage {outage['rule']} {outage['start']}, {outage['minutes']} min at"
            f" {outage['ratio']:.0%}: {outage['incidents']} incident(s)"
            f" {outage['incident_minutes']} min"
        )
    print(f"  spurious incidents (no scheduled outage): {len(results['spurious_incidents'])}")
    for line in results["spurious_incidents"]:
        print(f"    {line}")
    old = results["old_rule"]
    print(f"old rule: {old['failing_minutes']} failing minutes, {old['incidents']} incidents")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
