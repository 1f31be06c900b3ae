"""A demo of flask-server-status: a small shop API that fails now and then.

Run ``python demo_app.py --history 90`` and open the URLs it prints: the
public status page, the Flask-Admin panel (behind HTTP Basic auth) and the
configure API (behind a Bearer token). ``python demo_app.py --help`` lists
every option.

What it shows:

* a handful of routes named by their docstrings (``# Name``), some of which
  fail on purpose now and then, at the rates of a healthy service (a few
  requests per thousand: 500s, 503s; 404s and 400s that count as neutral),
  with Checkout's payment provider having a bad minute once an hour (a yellow
  banner for a few minutes, never an incident) and scheduled outages in the
  history (red, one incident each);
* a traffic generator in a background thread that calls those routes through
  the app (so they are counted exactly like real requests) and makes the page
  move: the extension flushes every 10 seconds here, the page refreshes itself
  every minute;
* ``--history DAYS`` fills that many days of history, with a few outages,
  through the extension's own write path (``state.store.write``), in seconds.

It is also importable: ``create_app(database_url)`` returns the app without
starting anything, e.g. for ``flask --app demo_app status routes``.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import random
import secrets
import sys
import textwrap
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flask import Flask, abort, jsonify, request
from flask_admin import Admin
from werkzeug.security import generate_password_hash
from werkzeug.serving import make_server

from flask_server_status import FlaskStatus, get_state
from flask_server_status.admin import StatusIndexView
from flask_server_status.config import LATENCY_BOUNDS_MS

#: Flush often so that the demo's page moves within seconds (the default is 60).
DEMO_FLUSH_INTERVAL = 10

#: Background failure ratios of the healthy routes: a few per mille, well under
#: the 1 % from which a route is degraded (``FLASK_STATUS_DEGRADED_RATIO``), as a
#: real service that works fails now and then (README.md, "Why these defaults").
PRODUCTS_FAILURE_RATIO = 0.002
SEARCH_FAILURE_RATIO = 0.001

#: Checkout's provider has one bad minute an hour (the minute ``:37`` UTC), in
#: which this share of payments fails: enough for a failing minute on the strip
#: and a few yellow minutes of its status window, one minute is never an incident.
CHECKOUT_BAD_MINUTE = 37
CHECKOUT_BAD_RATIO = 0.3


def _work(low_ms: float, high_ms: float) -> None:
    """Pretend to work, so that the latency figures mean something."""
    time.sleep(random.uniform(low_ms, high_ms) / 1000)


def add_shop_routes(app: Flask) -> None:
    """The demo's own routes: what a host app would have."""

    @app.route("/")
    def home() -> str:
        """
        # Home
        The shop's landing page. Always up.
        """
        return "Welcome to the demo shop! The status page is at /status."

    @app.route("/api/products")
    def products() -> Any:
        """
        # Product catalogue
        Lists the products. Fails with a 500 about 2 times in 1,000.
        """
        _work(2, 15)
        if random.random() < PRODUCTS_FAILURE_RATIO:
            abort(500)
        return jsonify([{"id": 1, "name": "Teapot"}, {"id": 2, "name": "Cup"}])

    @app.route("/api/products/<int:product_id>")
    def product(product_id: int) -> Any:
        """
        # Product details
        One product. Unknown ids answer 404: neutral (the rule has a variable).
        """
        _work(1, 8)
        if product_id > 95:
            abort(404)
        return jsonify({"id": product_id, "name": f"Product {product_id}"})

    @app.route("/api/search")
    def search() -> Any:
        """
        # Search
        Full-text search: slow, and unavailable (503) about once in 1,000.
        """
        _work(20, 120)
        if random.random() < SEARCH_FAILURE_RATIO:
            abort(503)
        if not request.args.get("q"):
            # A client error: neutral, counted but not held against uptime.
            abort(400)
        return jsonify({"results": [], "q": request.args["q"]})

    @app.route("/api/checkout", methods=["POST"])
    def checkout() -> Any:
        """
        # Checkout
        Takes payments through a provider that has a bad minute (502s) once an hour.
        """
        _work(10, 60)
        if time.gmtime().tm_min == CHECKOUT_BAD_MINUTE and random.random() < CHECKOUT_BAD_RATIO:
            abort(502)
        return jsonify({"order": random.randint(1000, 9999)}), 201

    @app.route("/health")
    def health() -> str:
        """For the load balancer's checks. No name line here, so the page shows "health"."""
        return "ok"


def create_app(
    database_url: str | None = None,
    admin_username: str = "admin",
    admin_password: str | None = None,
    api_secret: str | None = None,
) -> Flask:
    """The demo app: shop routes, Flask-Admin, FlaskStatus with its admin views and API.

    :param database_url: any SQLAlchemy URL; default ``$DEMO_DATABASE_URL``, else
        ``demo.db`` (SQLite) in the instance folder.
    :param admin_username: user name of the admin's Basic auth.
    :param admin_password: its password; random when omitted (see ``app.config["DEMO_..."]``).
    :param api_secret: the API's Bearer token; random when omitted.
    """
    app = Flask(__name__)
    database_url = database_url or os.environ.get("DEMO_DATABASE_URL")
    if not database_url:
        os.makedirs(app.instance_path, exist_ok=True)
        database_url = "sqlite:///" + os.path.join(app.instance_path, "demo.db")
    admin_password = admin_password or os.environ.get("DEMO_ADMIN_PASSWORD")
    admin_password = admin_password or secrets.token_urlsafe(12)
    api_secret = api_secret or os.environ.get("DEMO_API_SECRET") or secrets.token_urlsafe(24)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=database_url,
        # A fresh key each start is fine for a demo: it only signs CSRF tokens.
        SECRET_KEY=secrets.token_hex(16),
        FLASK_STATUS_FLUSH_INTERVAL=DEMO_FLUSH_INTERVAL,
        FLASK_STATUS_PAGE_TITLE="Demo shop status",
        FLASK_STATUS_ADMIN_USERNAME=admin_username,
        FLASK_STATUS_ADMIN_PASSWORD_HASH=generate_password_hash(admin_password),
        FLASK_STATUS_API_ENABLED=True,
        FLASK_STATUS_API_SECRET=api_secret,
        # Kept only so that the demo can print them; a real app keeps the hash only.
        DEMO_ADMIN_PASSWORD=admin_password,
        DEMO_API_SECRET=api_secret,
    )
    add_shop_routes(app)
    admin = Admin(app, name="Demo shop admin", index_view=StatusIndexView())
    FlaskStatus(app, admin=admin)
    return app


# -- live traffic -----------------------------------------------------------------


def _one_request(client: Any) -> None:
    roll = random.random()
    if roll < 0.25:
        client.get("/")
    elif roll < 0.50:
        client.get("/api/products")
    elif roll < 0.70:
        client.get(f"/api/products/{random.randint(1, 100)}")
    elif roll < 0.85:
        client.get("/api/search", query_string={"q": "tea"} if random.random() < 0.9 else None)
    elif roll < 0.95:
        client.post("/api/checkout")
    else:
        client.get("/health")


def start_traffic(app: Flask, rate: float, stop: threading.Event) -> threading.Thread:
    """Call the routes about ``rate`` times a second until ``stop`` is set.

    The calls go through the app's test client, i.e. through the whole WSGI
    stack the extension wraps, so they are counted like any real request.
    """

    def loop() -> None:
        client = app.test_client()
        while not stop.is_set():
            # A demo view raising must not end the traffic.
            with contextlib.suppress(Exception):
                _one_request(client)
            stop.wait(random.expovariate(rate))

    thread = threading.Thread(target=loop, name="demo-traffic", daemon=True)
    thread.start()
    return thread


# -- history ----------------------------------------------------------------------

#: rule -> (requests per hour, usual failure ratio, failing status, mean latency ms)
_PROFILES: dict[str, tuple[int, float, int, float]] = {
    "/": (400, 0.0, 500, 4),
    "/api/products": (300, PRODUCTS_FAILURE_RATIO, 500, 12),
    "/api/products/<int:product_id>": (200, 0.05, 404, 6),
    "/api/search": (150, SEARCH_FAILURE_RATIO, 503, 80),
    # The provider's bad minute: 30 % of one minute in 60.
    "/api/checkout": (60, CHECKOUT_BAD_RATIO / 60, 502, 40),
    "/health": (120, 0.0, 500, 1),
}


#: rule -> (share of the live traffic, failure ratio, failing status, mean latency ms):
#: what the routes above and :func:`_one_request` produce together, so that the
#: recent minutes of the history look like the live traffic that follows them.
_LIVE: dict[str, tuple[float, float, int, float]] = {
    "/": (0.25, 0.0, 500, 1),
    "/api/products": (0.25, PRODUCTS_FAILURE_RATIO, 500, 9),
    "/api/products/<int:product_id>": (0.20, 0.05, 404, 5),
    "/api/search": (0.15, SEARCH_FAILURE_RATIO, 503, 70),
    "/api/checkout": (0.10, 0.0, 502, 35),
    "/health": (0.05, 0.0, 500, 1),
}

#: Hours before now written minute by minute, as live traffic would have
#: left them, so that the minute strips are full from the first view.
RECENT_HOURS = 6


@dataclass
class Outage:
    rule: str
    start_minute: int
    minutes: int
    ratio: float
    status: int


def _histogram(count: int, latency_ms: float) -> list[int]:
    hist = [0] * (len(LATENCY_BOUNDS_MS) + 1)
    index = next((i for i, b in enumerate(LATENCY_BOUNDS_MS) if latency_ms <= b), -1)
    hist[index] = count
    return hist


def _slot(count: int, latency_ms: float) -> list[float]:
    return [count, count * latency_ms, latency_ms * 1.8, *_histogram(count, latency_ms)]


def _add(
    counts: dict[tuple[str, int, int], list[float]],
    key: tuple[str, int, int],
    count: int,
    latency_ms: float,
) -> None:
    if count <= 0:
        return
    slot = counts.get(key)
    if slot is None:
        counts[key] = _slot(count, latency_ms)
        return
    new = _slot(count, latency_ms)
    slot[0] += new[0]
    slot[1] += new[1]
    slot[2] = max(slot[2], new[2])
    for i in range(3, len(slot)):
        slot[i] += new[i]


def plan_outages(days: int, now_minute: int, rng: random.Random) -> list[Outage]:
    """A few outages spread over the history, one of them three hours ago.

    Each fails at least 60 % of the requests of every one of its minutes: a
    ``major_outage``, red on the page, and a single incident.
    """
    outages = [
        # Three hours ago (yesterday, just after midnight UTC), so that the
        # incident list starts with something.
        Outage("/api/checkout", now_minute - 3 * 60, 14, 0.7, 502),
    ]
    rules = [rule for rule in _PROFILES if rule not in ("/", "/health")]
    for _ in range(max(0, min(6, days // 12))):
        start = now_minute - rng.randint(1, days - 1) * 1440 - rng.randint(0, 1439)
        outages.append(
            Outage(
                rule=rng.choice(rules),
                start_minute=start,
                minutes=rng.choice((8, 25, 45, 120)),
                ratio=rng.choice((0.6, 0.75, 0.9)),
                status=rng.choice((500, 502, 503)),
            )
        )
    if days >= 20:
        # One long major outage of the whole API, for a red day on the strip.
        start = now_minute - (days // 3) * 1440 - 600
        outages.extend(Outage(rule, start, 180, 0.95, 503) for rule in rules)
    return [o for o in outages if o.start_minute >= now_minute - days * 1440]


def _poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (Knuth's method for small means, a normal one above)."""
    if mean > 30:
        return max(0, round(rng.gauss(mean, mean**0.5)))
    limit, k, p = math.exp(-mean), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def _binomial(rng: random.Random, n: int, ratio: float) -> int:
    return sum(1 for _ in range(n) if rng.random() < ratio)


def _add_hour(
    counts: dict[tuple[str, int, int], list[float]],
    rng: random.Random,
    hour: int,
    outage_minutes: dict[str, dict[int, Outage]],
) -> None:
    """One older hour of every route: one bucket, and its outage minutes one by one."""
    # A daily rhythm: busy afternoons (UTC), quiet nights.
    rhythm = 0.35 + 0.65 * max(0.0, 1 - abs(((hour // 60) % 24) - 15) / 12)
    for rule, (per_hour, fail_ratio, fail_status, latency) in _PROFILES.items():
        bad = outage_minutes.get(rule, {})
        total = max(1, int(per_hour * rhythm * rng.uniform(0.8, 1.2)))
        in_outage = [m for m in range(hour, hour + 60) if m in bad]
        normal_share = total * (60 - len(in_outage)) // 60
        failures = _binomial(rng, normal_share, fail_ratio)
        _add(counts, (rule, hour, 200), normal_share - failures, latency)
        _add(counts, (rule, hour, fail_status), failures, latency * 3)
        if rule == "/api/search":
            _add(counts, (rule, hour, 400), normal_share // 40, 2)
        for minute in in_outage:
            outage = bad[minute]
            # Enough requests that each minute is failing (3 failures at least).
            per_minute = max(10, total // 60)
            failed = round(per_minute * outage.ratio)
            _add(counts, (rule, minute, 200), per_minute - failed, latency * 4)
            _add(counts, (rule, minute, outage.status), failed, latency * 10)


def _add_minute(
    counts: dict[tuple[str, int, int], list[float]],
    rng: random.Random,
    minute: int,
    outage_minutes: dict[str, dict[int, Outage]],
    per_minute_rate: float,
) -> None:
    """One recent minute of every route, shared as the live traffic shares it."""
    for rule, (share, fail_ratio, fail_status, latency) in _LIVE.items():
        # At least one request: a quiet route still shows as up, not as "no data".
        total = max(1, _poisson(rng, per_minute_rate * share))
        bad = outage_minutes.get(rule, {})
        planned = bad.get(minute)
        if planned is not None:
            ratio, status = planned.ratio, planned.status
        elif (
            rule == "/api/checkout"
            and minute % 60 == CHECKOUT_BAD_MINUTE
            # Not right beside a planned outage, which it would seem to lengthen.
            and not any(m in bad for m in range(minute - 10, minute + 11))
        ):
            ratio, status = CHECKOUT_BAD_RATIO, fail_status  # the provider's bad minute
        else:
            ratio, status = fail_ratio, fail_status
        failures = _binomial(rng, total, ratio)
        neutral = _binomial(rng, total - failures, 0.1) if rule == "/api/search" else 0
        ok = 201 if rule == "/api/checkout" else 200  # as the view answers
        _add(counts, (rule, minute, ok), total - failures - neutral, latency)
        _add(counts, (rule, minute, status), failures, latency * 2)
        _add(counts, (rule, minute, 400), neutral, 2)


def fill_history(
    app: Flask,
    days: int,
    seed: int = 1,
    recent_rate: float = 5.0,
    now_minute: int | None = None,
) -> int:
    """Write ``days`` days of synthetic traffic with a few outages; return requests written.

    Older hours are written as one bucket at the start of each hour (the day
    strips and uptimes only need the hour and day roll-ups), outage minutes one
    by one (so the incident list shows their real length). The last
    :data:`RECENT_HOURS` hours, up to the current minute, get a row for every
    minute of every route, at about ``recent_rate`` requests per second shared
    as the live traffic shares them (``_LIVE``), with its failures: Checkout's
    bad minute an hour and the planned outages, one of them three hours ago.
    All of it goes through ``state.store.write``, the path real traffic takes,
    so the minute rows and the hour and day roll-ups stay consistent.
    ``now_minute`` (minutes since the epoch, default the current one) is the
    first minute not written, for a caller that must know the outages' times
    (``plan_outages(days, now_minute, random.Random(seed))``).
    """
    if days <= 0:
        return 0
    rng = random.Random(seed)
    state = get_state(app)
    ids = state.route_ids()
    if now_minute is None:
        now_minute = int(time.time() // 60)
    first_hour = (now_minute - days * 1440) // 60 * 60
    # The minute-by-minute part starts on an hour, at most RECENT_HOURS ago.
    recent_start = max(first_hour, (now_minute - RECENT_HOURS * 60) // 60 * 60)
    outages = plan_outages(days, now_minute, rng)
    outage_minutes: dict[str, dict[int, Outage]] = {}
    for outage in outages:
        for m in range(outage.start_minute, outage.start_minute + outage.minutes):
            outage_minutes.setdefault(outage.rule, {})[m] = outage

    written = 0
    day_counts: dict[tuple[str, int, int], list[float]] = {}
    for hour in range(first_hour, recent_start, 60):
        _add_hour(day_counts, rng, hour, outage_minutes)
        # Write a day at a time: a bounded batch, one transaction each.
        if (hour // 60) % 24 == 23:
            written += state.store.write(day_counts, ids)
            day_counts = {}

    per_minute_rate = max(recent_rate, 1.0) * 60
    for minute in range(recent_start, now_minute):
        _add_minute(day_counts, rng, minute, outage_minutes, per_minute_rate)
        if minute % 60 == 59 or minute + 1 == now_minute:
            written += state.store.write(day_counts, ids)
            day_counts = {}
    if day_counts:
        written += state.store.write(day_counts, ids)
    # Minute rows older than the retention are not needed: the roll-ups have them.
    state.store.prune()
    return written


# -- command line -------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="demo_app.py",
        description=textwrap.fill(
            "Run a small shop API with flask-server-status: a public status page at"
            " /status, a Flask-Admin panel at /admin/ (Status > Routes, Logs) behind HTTP"
            " Basic auth, and the configure API at /flask-status/configure behind a Bearer"
            " token. Credentials are printed at start (random unless given). Traffic is"
            " generated in the background so the page moves; counts are flushed every"
            f" {DEMO_FLUSH_INTERVAL} s and the page refreshes itself every minute."
        ),
        epilog=(
            "examples:  python demo_app.py --history 90\n"
            "           python demo_app.py --database postgresql+psycopg://postgres@127.0.0.1/demo\n"
            "           python demo_app.py --port 0 --exit-after 5   (a smoke test)\n"
            "With the app importable, the CLI works too: flask --app demo_app status routes"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (%(default)s)")
    parser.add_argument(
        "--port", type=int, default=5000, help="port to listen on; 0 picks a free one (%(default)s)"
    )
    parser.add_argument(
        "--database",
        default=os.environ.get("DEMO_DATABASE_URL"),
        metavar="URL",
        help="SQLAlchemy URL of the database (env DEMO_DATABASE_URL); default: SQLite"
        " file instance/demo.db",
    )
    parser.add_argument(
        "--history",
        type=int,
        default=0,
        metavar="DAYS",
        help="first add DAYS days of synthetic history with a few outages (e.g. 90). It"
        " adds to what the database holds: use a fresh database (or --reset) to start over",
    )
    parser.add_argument(
        "--reset", action="store_true", help="delete all status data before starting"
    )
    parser.add_argument(
        "--traffic",
        type=float,
        default=5.0,
        metavar="RPS",
        help="live requests per second from the background generator; 0 turns it off (%(default)s)",
    )
    parser.add_argument(
        "--exit-after",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop after SECONDS (flushing the counts first); for tests and smoke runs",
    )
    parser.add_argument(
        "--admin-user", default="admin", help="admin Basic-auth user name (%(default)s)"
    )
    parser.add_argument(
        "--admin-password",
        default=None,
        help="admin Basic-auth password (env DEMO_ADMIN_PASSWORD); random by default",
    )
    parser.add_argument(
        "--api-secret",
        default=None,
        help="the API's Bearer token (env DEMO_API_SECRET); random by default",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the synthetic history")
    return parser.parse_args(argv)


def _reset(app: Flask) -> None:
    from flask_server_status.models import Base

    state = get_state(app)
    with state.engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
    state.store.routes.forget()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    app = create_app(args.database, args.admin_user, args.admin_password, args.api_secret)
    state = get_state(app)
    if args.reset:
        _reset(app)
        print("Status data deleted.")
    if args.history > 0:
        started = time.perf_counter()
        written = fill_history(app, args.history, args.seed, args.traffic)
        took = time.perf_counter() - started
        print(f"History: {written:,} requests over {args.history} days written in {took:.1f} s.")

    server = make_server(args.host, args.port, app, threaded=True)
    base = f"http://{args.host}:{server.server_port}"
    user = app.config["FLASK_STATUS_ADMIN_USERNAME"]
    password = app.config["DEMO_ADMIN_PASSWORD"]
    secret = app.config["DEMO_API_SECRET"]
    print(
        "\n".join(
            [
                "flask-server-status demo",
                f"  status page  {base}/status",
                f"  JSON         {base}/status/summary.json",
                f"  admin        {base}/admin/  (Status > Routes)  user {user}"
                f"  password {password}",
                f"  API          curl -H 'Authorization: Bearer {secret}'"
                f" {base}/flask-status/configure",
                f"  database     {state.engine.url.render_as_string(hide_password=True)}",
                f"  traffic      {args.traffic:g} requests/s"
                + (f"; exiting after {args.exit_after:g} s" if args.exit_after else "")
                + "; Ctrl-C to stop",
            ]
        ),
        flush=True,
    )

    stop = threading.Event()
    if args.traffic > 0:
        start_traffic(app, args.traffic, stop)
    if args.exit_after is not None:
        timer = threading.Timer(args.exit_after, server.shutdown)
        timer.daemon = True
        timer.start()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        server.server_close()
        written = state.buffer.flush()
        print(f"Stopped; flushed {written} requests.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
