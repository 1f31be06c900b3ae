"""Per-request cost of flask-server-status against bare Flask and two peers.

The same app of 20 routes (200s, 404s, 500s, a path parameter) is built once
per contender:

``bare``        Flask alone: the floor.
``status``      this extension (SQLite, flush interval 1 h: flushing is not in
                the measured loop; ``bench/flush.py`` measures it).
``prometheus``  prometheus-flask-exporter, ``PrometheusMetrics(app)``.
``dashboard``   Flask-MonitoringDashboard, ``dashboard.bind(app)``, defaults.

The peers live in the benchmark's own virtualenv (``--setup-env`` makes
``bench/.env``); without it they are left out. Three modes:

``client``    Flask's test client in one process, contenders interleaved in
              rounds (A B C D A B C D ...); medians of the rounds, and each
              contender's ratio to bare Flask within the same round.
``wsgi``      instructions per request under ``valgrind --tool=callgrind``,
              calling ``app(environ, start_response)`` N and M times in two
              runs: (I(N) - I(M)) / (N - M) removes the start-up cost.
              The start-up heap is frozen (``gc.collect(); gc.freeze()``)
              before the timed loop in every contender, as a preloading
              server does; ``--no-gc-freeze`` measures without.
              Deterministic, so it sees differences of a fraction of a percent
              that timing on a shared machine cannot.
``gunicorn``  gunicorn (2 sync workers) per contender on loopback under
              ``wrk``; short runs interleaved in rounds; requests/s ratios.

Run ``python bench/overhead.py`` (all modes) or ``--mode client`` etc.;
``--smoke`` is a seconds-long run that checks the script still works.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    BENCH,
    ROOT,
    VENV_PYTHON,
    hold_drain_thread,
    median,
    percent,
    table,
    write_section,
)

if TYPE_CHECKING:  # imported where used: the peers' processes import this module too
    from flask import Flask

CONTENDERS = ("bare", "status", "prometheus", "dashboard")
#: Builds of the extension with parts taken out, to tell which part costs what
#: (``--variants``, wsgi mode only). See ``_apply_variant``.
VARIANTS = ("passthrough", "status-nocapture", "status-nodrain")
#: Contenders so slow that they get fewer requests (per-request figures and
#: ratios are unaffected; the run stays within minutes).
SCALE_DOWN = {"dashboard": 10}

#: One pass: 20 requests, one per route (14 x 200, 4 x 404, 2 x 500), plus
#: the path parameter taken twice and an unknown path.
PATHS = (
    "/",
    "/about",
    "/pricing",
    "/docs",
    "/blog",
    "/contact",
    "/team",
    "/careers",
    "/faq",
    "/api/users",
    "/api/orders",
    "/api/health",
    "/items/7",
    "/items/5000",
    "/search?q=flask",
    "/missing",
    "/gone",
    "/nowhere-at-all",
    "/fail",
    "/fail/db",
)
EXPECTED = (200,) * 13 + (404, 200, 404, 404, 404, 500, 500)


# -- the app -------------------------------------------------------------------------------


def create_app(contender: str = "bare", workdir: str | None = None) -> Any:
    """The benchmark app with ``contender`` installed (gunicorn calls this too)."""
    from flask import Flask

    workdir = workdir or tempfile.mkdtemp(prefix=f"bench-{contender}-")
    os.makedirs(workdir, exist_ok=True)
    app = Flask("bench_app", instance_path=workdir)
    app.config["SECRET_KEY"] = "bench"
    _add_routes(app)
    _install(app, contender, workdir)
    _apply_variant(app, contender)
    return app


def _page(name: str) -> Callable[[], str]:
    def view() -> str:
        return f"<h1>{name}</h1>"

    view.__name__ = f"page_{name}"
    view.__doc__ = f"# {name.title()}\nThe {name} page."
    return view


def _add_routes(app: Flask) -> None:
    """A small site's routes: pages, a JSON API, 404s and 500s."""
    from flask import abort, jsonify, request

    app.add_url_rule("/", view_func=_page("index"))
    for name in ("about", "pricing", "docs", "blog", "contact", "team", "careers", "faq"):
        app.add_url_rule(f"/{name}", view_func=_page(name))

    @app.route("/api/users")
    def users() -> Any:
        return jsonify([{"id": 1, "name": "ada"}, {"id": 2, "name": "alan"}])

    @app.route("/api/orders", methods=["GET", "POST"])
    def orders() -> Any:
        return jsonify({"orders": [], "count": 0})

    @app.route("/api/health")
    def health() -> Any:
        return {"ok": True}

    @app.route("/items/<int:item_id>")
    def item(item_id: int) -> Any:
        if item_id >= 1000:
            abort(404)
        return {"id": item_id}

    @app.route("/search")
    def search() -> str:
        return f"results for {request.args.get('q', '')}"

    @app.route("/missing")
    def missing() -> Any:
        abort(404)

    @app.route("/gone")
    def gone() -> tuple[str, int]:
        return "gone", 404

    @app.route("/fail")
    def fail() -> tuple[str, int]:
        return "error", 500

    @app.route("/fail/db")
    def fail_db() -> Any:
        abort(500)


def _install(app: Any, contender: str, workdir: str) -> None:
    """Install ``contender``'s extension (none for ``bare`` and ``passthrough``)."""
    base = contender.split("-")[0] if contender != "passthrough" else "bare"
    if contender.startswith("status"):
        from flask_server_status import FlaskStatus

        app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{workdir}/status.db"
        app.config["FLASK_STATUS_FLUSH_INTERVAL"] = 3600
        FlaskStatus(app)
    elif base == "prometheus":
        from prometheus_flask_exporter import PrometheusMetrics

        PrometheusMetrics(app)
    elif base == "dashboard":
        # Its database URL is read when the module is imported: a relative
        # SQLite file, so the process runs in ``workdir``.
        os.chdir(workdir)
        import flask_monitoringdashboard as dashboard

        dashboard.bind(app)
    elif base != "bare":
        raise SystemExit(f"unknown contender {contender!r}")


def _apply_variant(app: Any, contender: str) -> None:
    """Take parts out of the extension, to price each part (wsgi mode).

    ``passthrough``: bare Flask behind a do-nothing WSGI middleware (the
    price of a middleware layer at all). ``status-nocapture``: the extension
    installed but its capture middleware unwrapped (blueprints, CLI, session
    handling). ``status-nodrain``: capture on, but the background thread never
    starts, so events are queued and never drained (the price of draining is
    ``status`` minus this).
    """
    if contender == "passthrough":
        inner = app.wsgi_app

        def passthrough(environ: dict[str, Any], start_response: Any) -> Any:
            return inner(environ, start_response)

        app.wsgi_app = passthrough
    elif contender == "status-nocapture":
        app.wsgi_app = app.wsgi_app.wsgi_app
    elif contender == "status-nodrain":
        hold_drain_thread(app.wsgi_app.buffer)


def available(contenders: Iterable[str]) -> list[str]:
    """The contenders whose packages import here."""
    modules = {"prometheus": "prometheus_flask_exporter", "dashboard": "flask_monitoringdashboard"}
    out = []
    for name in contenders:
        module = modules.get(name)
        if module is not None:
            try:
                __import__(module)
            except ImportError:
                print(f"note: {name} left out ({module} is not installed here)", file=sys.stderr)
                continue
        out.append(name)
    return out


# -- mode 1: the test client ---------------------------------------------------------------


def run_client(contenders: list[str], rounds: int, passes: int, workdir: Path) -> dict[str, Any]:
    clients = {}
    for name in contenders:
        app = create_app(name, str(workdir / name))
        client = app.test_client()
        got = tuple(client.get(p).status_code for p in PATHS)
        if got != EXPECTED:
            raise SystemExit(f"{name}: answers {got}, expected {EXPECTED}")
        clients[name] = client
    per_round: dict[str, list[float]] = {n: [] for n in contenders}
    for turn in range(rounds):
        for name in _rotated(contenders, turn):
            get = clients[name].get
            count = max(1, passes // SCALE_DOWN.get(name, 1))
            start = time.perf_counter()
            for _ in range(count):
                for path in PATHS:
                    get(path)
            per_round[name].append((time.perf_counter() - start) / (count * len(PATHS)) * 1e6)
    return _summarise(per_round, higher_is_better=False)


def _rotated(names: list[str], turn: int) -> list[str]:
    """A B C D, then B C D A, ...: no contender always runs right after another."""
    shift = turn % len(names)
    return names[shift:] + names[:shift]


def _summarise(per_round: dict[str, list[float]], higher_is_better: bool) -> dict[str, Any]:
    """Medians of the rounds, and of each round's ratio to bare Flask."""
    bare = per_round["bare"]
    out: dict[str, Any] = {}
    for name, values in per_round.items():
        if higher_is_better:  # throughput: cost = 1 - ratio, so ratio is bare / value
            ratios = [b / v for b, v in zip(bare, values, strict=True)]
        else:
            ratios = [v / b for b, v in zip(bare, values, strict=True)]
        out[name] = {"median": median(values), "ratio": median(ratios), "rounds": values}
    return out


# -- mode 2: instructions per request under callgrind --------------------------------------


def wsgi_loop(contender: str, requests: int, freeze: bool = True) -> None:
    """Call the app ``requests`` times through WSGI, then leave without the exit hooks.

    With ``freeze``, the heap left by start-up and the first requests is
    collected and frozen before the loop, for every contender alike.
    """
    import gc

    from werkzeug.test import EnvironBuilder

    # A directory of its own per run: a shared one would hand this run the
    # journal the previous (M or other-seed) run left, and its replay into
    # the database, timed by callgrind, would be counted as per-request cost.
    app = create_app(contender, tempfile.mkdtemp(prefix=f"loop-{contender}-", dir=Path.cwd()))
    environs = [
        EnvironBuilder(path=p, environ_base={"REMOTE_ADDR": "127.0.0.1"}).get_environ()
        for p in PATHS
    ]

    def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
        return None

    def call(environ: dict[str, Any]) -> None:
        body = app(dict(environ), start_response)
        for _ in body:
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()

    for environ in environs:  # first requests (route sync, lazy imports): in both runs
        call(environ)
    if freeze:
        # Without this, the first full collection after start-up falls in the
        # N run (after ~1,900 requests for bare Flask, ~2,700 with the
        # extension) but not in the M run, and traverses the whole start-up
        # heap (~32,000 objects for bare Flask, ~72,000 with the extension's
        # modules): a one-time cost of the heap's size that the difference
        # I(N) - I(M) would bill to each of the N - M requests. None follows
        # in 60,000 requests, for either. Frozen, the young collections the
        # requests cause are still counted.
        gc.collect()
        gc.freeze()
    count = len(environs)
    for i in range(requests):
        call(environs[i % count])
    buffer = getattr(app.wsgi_app, "buffer", None)
    if buffer is not None and contender != "status-nodrain":
        # Draining is per-request work the flusher does each second; count it
        # all. Flushing (and the peers' exit hooks) is left out for everyone.
        buffer.drain()
    sys.stdout.flush()
    os._exit(0)


def instructions(
    python: str, args: list[str], outdir: Path, seed: int, tag: str, smoke: bool = False
) -> int:
    """Instructions callgrind counts for ``python overhead.py ARGS`` (0 in smoke mode)."""
    env = dict(os.environ, PYTHONHASHSEED=str(seed))
    command = [python, __file__, *args]
    if smoke:  # no valgrind: only check that the loop runs
        subprocess.run(command, check=True, env=env, cwd=outdir, stdout=subprocess.DEVNULL)
        return 0
    out = outdir / f"callgrind.{tag}"
    subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *command],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=outdir,
    )
    for line in out.read_text(errors="replace").splitlines():
        if line.startswith(("summary:", "totals:")):
            out.unlink()
            return int(line.split()[1])
    raise SystemExit(f"no totals in {out}")


def run_wsgi(
    contenders: list[str],
    n_all: int,
    m_all: int,
    seeds: int,
    workdir: Path,
    python: str,
    smoke: bool,
    freeze: bool = True,
) -> dict[str, Any]:
    """Instructions per request, once per hash seed; the median and the range.

    The count is exact for one seed, but the seed (string hashes, hence dict
    layouts, allocation and garbage-collection timing) moves a whole Flask
    request by a couple of percent; the median over seeds evens that out and
    the range shows how much of a difference is real.
    """
    results: dict[str, Any] = {}
    for name in contenders:
        scale = SCALE_DOWN.get(name, 1)
        n, m = (n_all // scale, m_all // scale) if not smoke else (n_all, m_all)
        figures = []
        for seed in range(seeds):
            counts = [
                instructions(
                    python,
                    ["--wsgi-loop", name, "--requests", str(count)]
                    + ([] if freeze else ["--no-gc-freeze"]),
                    workdir,
                    seed,
                    f"{name}.{count}.{seed}",
                    smoke,
                )
                for count in (m, n)
            ]
            figures.append((counts[1] - counts[0]) / (n - m))
        results[name] = {
            "per_request": median(figures),
            "min": min(figures),
            "max": max(figures),
            "seeds": figures,
            "n": n,
            "m": m,
        }
        print(f"  {name}: {results[name]['per_request']:,.0f} instructions/request", flush=True)
    bare = results["bare"]["per_request"]
    for value in results.values():
        value["ratio"] = value["per_request"] / bare if bare else 1.0
    return results


# -- mode 2b: the capture path alone, to price its parts -----------------------------------


MICRO = (
    "plain",
    "wrapper",
    "wrapper+clock",
    "capture",
    "capture+drain",
    "capture+drain+journal",
    "capture+drain1",
    "capture+drain1+journal",
)


def micro_loop(kind: str, requests: int) -> None:
    """Call a do-nothing WSGI app, bare or behind the extension's capture.

    Without Flask around it, the capture middleware's own instructions
    stand out from a count that does not move between runs.
    """
    from werkzeug.test import EnvironBuilder

    from flask_server_status import capture
    from flask_server_status.buffer import Buffer

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    environ = EnvironBuilder(path="/").get_environ()

    def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
        return None

    journal = None
    if kind.endswith("+journal"):
        from flask_server_status.journal import Journal

        journal = Journal(str(Path.cwd() / f"journal-{os.getpid()}"))
    buffer = Buffer(lambda counts, mark: None, 3600, 100_000, journal=journal)
    hold_drain_thread(buffer)  # drained below, at a known point, or not at all
    wsgi: Any = app
    if kind.startswith("capture"):
        wsgi = capture.CaptureMiddleware(app, buffer)
    elif kind.startswith("wrapper"):
        wsgi = _wrapper(app, clock=kind == "wrapper+clock")
    # "drain1": a drain after every request, as at one request per second,
    # where each drain (and each journal line) serves a single request.
    each = kind.startswith("capture+drain1")
    for _ in range(requests):
        for _chunk in wsgi(dict(environ), start_response):
            pass
        if each:
            buffer.drain()
    if kind.startswith("capture+drain"):
        buffer.drain()
    sys.stdout.flush()
    os._exit(0)


def _wrapper(app: Any, clock: bool) -> Any:
    """Stages of the capture middleware's shape, to price them apart.

    ``wrapper``: a closure around ``start_response`` and ``try``/``finally``,
    nothing recorded; ``wrapper+clock``: plus the two ``perf_counter``
    readings. ``capture`` minus ``wrapper+clock`` is then the recording
    itself (the list of what was sent, the queue append, the checks).
    """
    from time import perf_counter

    def middleware(environ: dict[str, Any], start_response: Any) -> Any:
        start = perf_counter() if clock else 0.0

        def capture_status(status: str, headers: Any, exc_info: Any = None) -> Any:
            return start_response(status, headers, exc_info)

        try:
            return app(environ, capture_status)
        finally:
            if clock:
                perf_counter() - start

    return middleware


def run_micro(n: int, m: int, workdir: Path, python: str, smoke: bool) -> dict[str, float]:
    out = {}
    for kind in MICRO:
        counts = [
            instructions(
                python,
                ["--micro-loop", kind, "--requests", str(count)],
                workdir,
                0,
                f"micro.{kind}.{count}",
                smoke,
            )
            for count in (m, n)
        ]
        out[kind] = (counts[1] - counts[0]) / (n - m)
        print(f"  micro {kind}: {out[kind]:,.0f} instructions/call", flush=True)
    return out


# -- mode 3: gunicorn under wrk ------------------------------------------------------------

_WRK_SCRIPT = """
local paths = {%s}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i %% #paths) + 1])
end
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"gunicorn exited with {process.returncode} before answering")
        try:
            with urllib.request.urlopen(url + "/", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"gunicorn at {url} did not answer within {timeout} s")


def run_gunicorn(
    contenders: list[str], rounds: int, seconds: int, workdir: Path, python: str
) -> dict[str, Any]:
    gunicorn = [python, "-m", "gunicorn"]
    script = workdir / "paths.lua"
    script.write_text(_WRK_SCRIPT % ", ".join(json.dumps(p) for p in PATHS))
    servers: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
    try:
        for name in contenders:
            port = _free_port()
            appdir = workdir / f"gunicorn-{name}"
            appdir.mkdir(exist_ok=True)
            process = subprocess.Popen(
                [
                    *gunicorn,
                    "--workers",
                    "2",
                    "--bind",
                    f"127.0.0.1:{port}",
                    "--chdir",
                    str(appdir),
                    "--pythonpath",
                    str(BENCH),
                    "--log-level",
                    "warning",
                    f"overhead:create_app({name!r}, {str(appdir)!r})",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            url = f"http://127.0.0.1:{port}"
            servers[name] = (process, url)
            _wait_ready(url, process)
        # The shared machine's speed swings by tens of percent from one few
        # seconds to the next, so each contender is paired with a bare run
        # right beside it (bare first in even rounds, second in odd ones) and
        # the ratio is taken within the pair.
        runs: dict[str, list[float]] = {n: [] for n in contenders}
        ratios: dict[str, list[float]] = {n: [] for n in contenders}
        others = [n for n in contenders if n != "bare"]
        for turn in range(rounds):
            for name in _rotated(others, turn):
                pair = ["bare", name] if turn % 2 == 0 else [name, "bare"]
                got = {n: _wrk(servers[n][1], seconds, script) for n in pair}
                runs["bare"].append(got["bare"])
                runs[name].append(got[name])
                ratios[name].append(got["bare"] / got[name])
        ratios["bare"] = [1.0]
        return {
            n: {"median": median(runs[n]), "ratio": median(ratios[n]), "rounds": runs[n]}
            for n in contenders
        }
    finally:
        for process, _url in servers.values():
            process.send_signal(signal.SIGTERM)
        for process, _url in servers.values():
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()


def _wrk(url: str, seconds: int, script: Path) -> float:
    out = subprocess.run(
        ["wrk", "-t1", "-c8", f"-d{seconds}s", "-s", str(script), url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    for line in out.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])
    raise SystemExit(f"wrk printed no Requests/sec:\n{out}")


# -- the report ----------------------------------------------------------------------------


def _peer_verdict(results: dict[str, Any], key: str, added: Callable[[float], float]) -> str:
    peers = [added(results[p][key]) for p in ("prometheus", "dashboard") if p in results]
    ours = added(results["status"][key])
    if not peers:
        return "peers not measured (no bench/.env)"
    cheaper = min(peers)
    if cheaper <= 0:
        return "the cheaper peer added nothing measurable in this run"
    share = ours / cheaper
    return f"this extension's added cost is {share:.2f} of the cheaper peer's (target at most 0.20)"


def report(results: dict[str, Any], args: argparse.Namespace) -> str:
    parts = []
    if "client" in results:
        r = results["client"]
        parts.append(
            f"### Test client, one process ({args.rounds} rounds x {args.passes * len(PATHS):,}"
            " requests per contender (dashboard a tenth), interleaved)\n\n"
            + table(
                ["contender", "µs/request (median)", "ratio to bare (median of rounds)", "added"],
                [[n, v["median"], f"{v['ratio']:.3f}", percent(v["ratio"])] for n, v in r.items()],
            )
            + "\n\nTarget: this extension adds at most 3 %. "
            + _peer_verdict(r, "ratio", lambda x: x - 1)
            + "."
        )
    if "wsgi" in results:
        r = results["wsgi"]
        parts.append(
            f"### Instructions per request through WSGI (callgrind, N={args.n}, M={args.m};"
            f" dashboard N/10, M/10; median of {args.seeds} hash seeds;"
            f" start-up heap {'not frozen' if args.no_gc_freeze else 'frozen'})\n\n"
            + table(
                ["contender", "instructions/request", "range over seeds", "ratio to bare", "added"],
                [
                    [
                        n,
                        v["per_request"],
                        f"{v['min']:,.0f} - {v['max']:,.0f}",
                        f"{v['ratio']:.3f}",
                        percent(v["ratio"]),
                    ]
                    for n, v in r.items()
                ],
            )
            + (
                "\n\n(--smoke: the loop ran without valgrind; nothing was measured.)"
                if args.smoke
                else ""
            )
            + "\n\nTarget: this extension adds at most 5 %. "
            + _peer_verdict(r, "ratio", lambda x: x - 1)
            + ". Variants, when listed: `passthrough` is bare Flask behind an empty"
            " middleware; `status-nocapture` the extension with its capture unwrapped;"
            " `status-nodrain` capture on but events never drained."
        )
    if "micro" in results:
        r = results["micro"]
        bare = results["wsgi"]["bare"]["per_request"]
        steps = [
            ("a closure around start_response, try/finally", "wrapper", "plain"),
            ("two perf_counter readings", "wrapper+clock", "wrapper"),
            ("recording: sent list, rule lookup, queue append, checks", "capture", "wrapper+clock"),
            ("the whole capture middleware", "capture", "plain"),
            ("draining one event into the counters (flusher thread)", "capture+drain", "capture"),
            ("capture and drain together", "capture+drain", "plain"),
            (
                "journal: its line for a drain of all N requests (busy process)",
                "capture+drain+journal",
                "capture+drain",
            ),
            ("a drain after every request (one request a second)", "capture+drain1", "capture"),
            (
                "journal: one line per request (one request a second)",
                "capture+drain1+journal",
                "capture+drain1",
            ),
        ]
        parts.append(
            f"### Where the extension's instructions go (callgrind, a do-nothing WSGI app,"
            f" N={args.n * 10}, M={args.m * 10})\n\n"
            + table(
                ["part", "instructions/request", "share of a bare Flask request"],
                [
                    [label, r[a] - r[b], f"{(r[a] - r[b]) / bare * 100:.2f} %" if bare else "-"]
                    for label, a, b in steps
                ],
            )
            + "\n\n`wrapper` and `wrapper+clock` are stand-ins of the middleware's shape"
            " written in the benchmark; `capture` is the extension's own"
            " `CaptureMiddleware`, and `capture+drain` adds `Buffer.drain()` of the queued"
            " events; `+journal` appends each drain's counts to the local journal (one"
            " `os.write` of a JSON line per drain, in the drain thread, never on the request"
            " path); `drain1` drains after every request, the worst case for the journal"
            " (each line serves one request). These differences are exact; the whole-app"
            " figures above move by a couple of percent with the hash seed (allocation and"
            " garbage-collection timing)."
        )
    if "gunicorn" in results:
        r = results["gunicorn"]
        parts.append(
            f"### gunicorn, 2 sync workers, wrk -t1 -c8 on loopback ({args.rounds_http} rounds;"
            f" each contender's {args.seconds} s run paired with a bare one beside it, the"
            " ratio taken within the pair)\n\n"
            + table(
                ["contender", "requests/s (median)", "throughput vs bare", "cost"],
                [
                    [n, v["median"], f"{1 / v['ratio']:.3f}", f"{(1 - 1 / v['ratio']) * 100:.1f} %"]
                    for n, v in r.items()
                ],
            )
            + "\n\nThroughput vs bare is the median of the pairs' ratios.\n\n"
            + "Target: this extension costs at most 3 % of the throughput. "
            + _peer_verdict(r, "ratio", lambda x: 1 - 1 / x)
            + ". wrk shares the 2 cores with the workers, so absolute figures are low;"
            " the ratios are what compares."
        )
    return "\n\n".join(parts)


def setup_env() -> None:
    """Make ``bench/.env``: a plain venv with this package, the peers, gunicorn."""
    env = BENCH / ".env"
    if not VENV_PYTHON.exists():
        subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
    subprocess.run(
        [
            str(VENV_PYTHON),
            "-m",
            "pip",
            "install",
            "-q",
            "-e",
            str(ROOT),
            "prometheus-flask-exporter",
            "Flask-MonitoringDashboard",
            "gunicorn",
            "pyinstrument",
        ],
        check=True,
    )


def _wsgi_mode(
    args: argparse.Namespace, contenders: list[str], workdir: Path, python: str
) -> dict[str, Any]:
    """The ``wsgi`` (and, with ``--variants`` or ``--parts``, ``micro``) results; none without
    valgrind."""
    if not args.smoke and shutil.which("valgrind") is None:
        print("wsgi mode skipped: valgrind is not installed", file=sys.stderr)
        return {}
    print("callgrind ...", flush=True)
    names = contenders + (list(VARIANTS) if args.variants else [])
    results = {
        "wsgi": run_wsgi(
            names, args.n, args.m, args.seeds, workdir, python, args.smoke, not args.no_gc_freeze
        )
    }
    if args.variants or args.parts:
        results["micro"] = run_micro(args.n * 10, args.m * 10, workdir, python, args.smoke)
    return results


def _helper_mode(args: argparse.Namespace) -> bool:
    """Run a child's loop or ``--setup-env`` if asked for; whether one ran."""
    if args.wsgi_loop:
        wsgi_loop(args.wsgi_loop, args.requests, not args.no_gc_freeze)
    elif args.micro_loop:
        micro_loop(args.micro_loop, args.requests)
    elif args.setup_env:
        setup_env()
    else:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", action="append", choices=["client", "wsgi", "gunicorn"])
    parser.add_argument("--smoke", action="store_true", help="a seconds-long check, no docs")
    parser.add_argument("--setup-env", action="store_true", help="make bench/.env and stop")
    parser.add_argument("--no-venv", action="store_true", help="run here, not in bench/.env")
    parser.add_argument("--variants", action="store_true", help="wsgi mode: price each part")
    parser.add_argument(
        "--parts", action="store_true", help="wsgi mode: the capture/drain/journal parts only"
    )
    parser.add_argument(
        "--section",
        default="overhead",
        help="the docs/benchmarks.md section to write (a partial run gets its own)",
    )
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--passes", type=int, default=50, help="passes over the 20 paths")
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--m", type=int, default=300)
    parser.add_argument("--rounds-http", type=int, default=10)
    parser.add_argument("--seconds", type=int, default=2)
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument(
        "--merge",
        help="start from the results in this --json file of an earlier run (same settings),"
        " replacing only the modes measured now",
    )
    parser.add_argument("--seeds", type=int, default=3, help="wsgi mode: hash seeds")
    parser.add_argument(
        "--no-gc-freeze",
        action="store_true",
        help="wsgi mode: leave the start-up heap to the collector (the method before 2026-12-01)",
    )
    parser.add_argument("--wsgi-loop", help=argparse.SUPPRESS)
    parser.add_argument("--micro-loop", help=argparse.SUPPRESS)
    parser.add_argument("--requests", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if _helper_mode(args):
        return 0
    if (
        not args.no_venv
        and VENV_PYTHON.exists()
        and Path(sys.prefix).resolve() != (BENCH / ".env").resolve()
    ):
        # The peers are only in the benchmark's venv: run there.
        os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), __file__, *sys.argv[1:]])

    if args.smoke:
        args.rounds, args.passes, args.n, args.m, args.seeds = 2, 2, 40, 20, 1
        args.rounds_http, args.seconds = 1, 1
    modes = args.mode or ["client", "wsgi", "gunicorn"]
    contenders = available(c for c in args.contenders.split(",") if c)
    if "bare" not in contenders or "status" not in contenders:
        raise SystemExit("bare and status are always measured")
    contenders = ["bare", *[c for c in contenders if c != "bare"]]
    python = sys.executable
    results: dict[str, Any] = json.loads(Path(args.merge).read_text()) if args.merge else {}
    workdir = Path(tempfile.mkdtemp(prefix="bench-overhead-"))
    cwd = os.getcwd()
    try:
        if "client" in modes:
            print("test client ...", flush=True)
            results["client"] = run_client(contenders, args.rounds, args.passes, workdir)
            os.chdir(cwd)
        if "wsgi" in modes:
            results.update(_wsgi_mode(args, contenders, workdir, python))
        if "gunicorn" in modes:
            if shutil.which("wrk") is None:
                print("gunicorn mode skipped: wrk is not installed", file=sys.stderr)
            else:
                print("gunicorn + wrk ...", flush=True)
                http = contenders if not args.smoke else ["bare", "status"]
                results["gunicorn"] = run_gunicorn(
                    http, args.rounds_http, args.seconds, workdir, python
                )
    finally:
        os.chdir(cwd)
        shutil.rmtree(workdir, ignore_errors=True)
    text = report(results, args)
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    if not args.smoke:
        title = "Per-request overhead (bench/overhead.py)"
        if args.section != "overhead":
            title = f"Per-request overhead: {args.section} (bench/overhead.py)"
        write_section(args.section, title, text)
    return 0


if __name__ == "__main__":
    code = main()
    # Leave without the exit hooks: the apps' work directories are gone, and
    # the peers' hooks would try to write there (the extension's too).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
