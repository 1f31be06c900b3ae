"""What the tests share: counts to write, totals to read back, route rows, API constants.

A new test writes traffic for a minute and reads back what was stored in
three lines::

    from helpers import slot, stored, write_counts

    write_counts(app, {("/", minute, 200): slot(5, ms=12.0)})
    assert stored(app) == {("/", 200): 5}

``tests/`` has no ``__init__.py``: pytest's default ("prepend") import mode
puts this directory on ``sys.path`` when it loads ``conftest.py``, so
``from helpers import ...`` works from the repository root, from an unpacked
sdist and from any virtualenv, exactly as ``from conftest import ...`` does.
mypy finds it the same way (``files`` in ``pyproject.toml`` names ``tests``).
This module imports nothing from ``conftest`` (which imports it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest
import sqlalchemy as sa
from flask import Flask

from flask_server_status import FlaskStatus, get_state
from flask_server_status.config import HISTOGRAM_SIZE, LATENCY_BOUNDS_MS
from flask_server_status.models import Log, Route

__all__ = [
    "API",
    "AUTH",
    "CONFIGURE",
    "SECRET",
    "LiveServerFactory",
    "MakeApp",
    "Served",
    "Slot",
    "Source",
    "Traffic",
    "epoch_minute",
    "latency_bucket",
    "must",
    "route_row",
    "run_bench",
    "server_problem",
    "slot",
    "stored",
    "stored_rollups",
    "stored_total",
    "write_counts",
    "xml_find",
    "xml_text",
]

# -- API constants --------------------------------------------------------------------

#: The API secret the API tests configure (``FLASK_STATUS_API_SECRET``).
SECRET = "tSx0L5exSjiPqqXs"
#: The header that carries it.
AUTH = {"Authorization": f"Bearer {SECRET}"}
#: App config that turns the API on with that secret.
API = {"API_ENABLED": True, "API_SECRET": SECRET}
#: The configure endpoint.
CONFIGURE = "/flask-status/configure"

# -- fixture types (for annotating test parameters) -----------------------------------

#: The ``make_app`` fixture: ``make_app(url, config=None, routes_first=True, **kwargs)``.
MakeApp = Callable[..., tuple[Flask, FlaskStatus]]


class Served(Protocol):
    """What ``live_server(app)`` returns (``conftest.LiveServer``)."""

    url: str

    def stop(self) -> None: ...


#: The ``live_server`` fixture.
LiveServerFactory = Callable[[Flask], Served]

# -- writing counts -------------------------------------------------------------------

#: One counter slot as the buffer keeps it and the store writes it:
#: ``[count, latency_sum_ms, latency_max_ms, h0, ..., hN]``, where ``hN`` counts
#: the requests up to ``LATENCY_BOUNDS_MS[N]`` (the last one: everything slower).
Slot = list[float]


def latency_bucket(ms: float) -> int:
    """The histogram bucket the buffer puts a request of ``ms`` milliseconds in."""
    return bisect_left(LATENCY_BOUNDS_MS, ms)


def slot(
    count: int, ms: float = 20.0, *, max_ms: float | None = None, bucket: int | None = None
) -> Slot:
    """A counter slot of ``count`` requests that took ``ms`` milliseconds each.

    The latency sum is ``count * ms``. ``max_ms`` (default ``ms``) and
    ``bucket`` (default: the bucket of ``ms``) are there for tests that need
    a maximum or a percentile that differs from the mean.
    """
    histogram = [0] * HISTOGRAM_SIZE
    histogram[latency_bucket(ms) if bucket is None else bucket] = count
    return [count, ms * count, ms if max_ms is None else max_ms, *histogram]


def epoch_minute(minute: datetime | int) -> int:
    """Minutes since the epoch, the buffer's key for a minute (an int is kept as is)."""
    if isinstance(minute, datetime):
        return int(minute.timestamp()) // 60
    return minute


#: ``{(rule, minute, status): slot}``, the minute an aware datetime or an epoch minute.
#: (A union, as ``Mapping`` is invariant in its key type.)
Traffic = (
    Mapping[tuple[str, datetime, int], Slot]
    | Mapping[tuple[str, int, int], Slot]
    | Mapping[tuple[str, datetime | int, int], Slot]
)


def write_counts(app: Flask, counts: Traffic) -> int:
    """Write ``{(rule, minute, status): slot}`` through the store, as a flush would.

    ``minute`` is an aware datetime or an epoch minute. Returns the number
    of requests stored.
    """
    state = get_state(app)
    keyed = {
        (rule, epoch_minute(minute), code): list(s) for (rule, minute, code), s in counts.items()
    }
    return state.store.write(keyed, state.route_ids())


# -- reading back what was stored -----------------------------------------------------

#: Where to read from: an app with the extension, an engine, or a database URL
#: (a URL gets an engine of its own, disposed of after the read, so a test can
#: read the database directly while the app's engine goes through a proxy).
Source = Flask | sa.Engine | str


@contextmanager
def _connect(source: Source) -> Iterator[sa.Connection]:
    if isinstance(source, Flask):
        engine = get_state(source).engine
    elif isinstance(source, sa.Engine):
        engine = source
    else:
        own = sa.create_engine(source)
        try:
            with own.connect() as conn:
                yield conn
        finally:
            own.dispose()
        return
    with engine.connect() as conn:
        yield conn


def stored(source: Source, *, missing_tables_ok: bool = False) -> Counter[tuple[str, int]]:
    """``(rule, status) -> count``, summed over the minute rows.

    :param missing_tables_ok: an empty Counter, not an error, while the
        status tables do not exist yet.
    """
    try:
        with _connect(source) as conn:
            rows = conn.execute(
                sa.select(Route.rule, Log.status, sa.func.sum(Log.count))
                .join(Route, Route.id == Log.route_id)
                .group_by(Route.rule, Log.status)
            )
            return Counter({(rule, status): int(n) for rule, status, n in rows})
    except sa.exc.DBAPIError:
        if missing_tables_ok:
            return Counter()
        raise


def stored_total(source: Source, *, missing_tables_ok: bool = False) -> int:
    """All requests in the minute rows (0 while the tables do not exist, if allowed)."""
    try:
        with _connect(source) as conn:
            return int(
                conn.execute(sa.select(sa.func.coalesce(sa.func.sum(Log.count), 0))).scalar_one()
            )
    except sa.exc.DBAPIError:
        if missing_tables_ok:
            return 0
        raise


def stored_rollups(source: Source, model: Any) -> dict[str, tuple[int, int, int, int]]:
    """``rule -> (total, success, failure, neutral)`` summed over a roll-up table.

    ``model`` is ``LogHour`` or ``LogDay``.
    """
    with _connect(source) as conn:
        rows = conn.execute(
            sa.select(
                Route.rule,
                sa.func.sum(model.total),
                sa.func.sum(model.success),
                sa.func.sum(model.failure),
                sa.func.sum(model.neutral),
            )
            .join(Route, Route.id == model.route_id)
            .group_by(Route.rule)
        )
        return {
            rule: (int(total), int(success), int(failure), int(neutral))
            for rule, total, success, failure, neutral in rows
        }


def route_row(app: Flask, rule: str) -> sa.Row[Any]:
    """The route table's row for ``rule`` (``.name``, ``.hidden``, ...), read directly."""
    with get_state(app).engine.connect() as conn:
        return conn.execute(sa.select(Route.__table__).where(Route.rule == rule)).one()


# -- narrowing what a test found ---------------------------------------------------------

T = TypeVar("T")


def must(value: T | None, what: str = "a match") -> T:
    """``value``, failing the test if it is None: ``must(re.search(...)).group(1)``.

    Narrows ``X | None`` to ``X`` for mypy, and a miss reads as a test
    failure that says what was missing instead of an AttributeError.
    """
    if value is None:
        pytest.fail(f"expected {what}, found None")
    return value


def xml_find(parent: ET.Element, path: str) -> ET.Element:
    """``parent.find(path)``, failing the test if there is no such element."""
    return must(parent.find(path), f"an element at {path!r}")


def xml_text(parent: ET.Element, path: str) -> str:
    """The text of ``parent.find(path)`` (``""`` if it has none); fails if it is missing."""
    return xml_find(parent, path).text or ""


# -- the benchmark scripts ------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
BENCH_DOCS = ROOT / "docs" / "benchmarks.md"


def run_bench(name: str, tmp_path: Path, *args: str) -> tuple[Any, str]:
    """Run ``bench/<name>.py --smoke``; return its JSON results and its output.

    The script must succeed and must not touch ``docs/benchmarks.md`` (a
    smoke run's figures mean nothing). It never sees
    ``FLASK_STATUS_TEST_POSTGRES_URL``: a server is passed as an argument.
    """
    out = tmp_path / f"{name}.json"
    before = BENCH_DOCS.stat().st_mtime_ns if BENCH_DOCS.exists() else None
    env = {k: v for k, v in os.environ.items() if k != "FLASK_STATUS_TEST_POSTGRES_URL"}
    proc = subprocess.run(
        [sys.executable, str(BENCH / f"{name}.py"), "--smoke", "--json", str(out), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (BENCH_DOCS.stat().st_mtime_ns if BENCH_DOCS.exists() else None) == before
    return json.loads(out.read_text()), proc.stdout


# -- database servers -----------------------------------------------------------------

_problems: dict[str, str | None] = {}


def server_problem(url: str) -> str | None:
    """None if a database server answers ``SELECT 1`` at ``url``, else why not.

    The answer is remembered per URL for the session: a server that is down
    costs one connect timeout (3 s), not one per test.
    """
    if url not in _problems:
        try:
            timeout = {"connect_timeout": 3} if url.startswith(("postgresql", "mysql")) else {}
            engine = sa.create_engine(url, connect_args=timeout)
            try:
                with engine.connect() as conn:
                    conn.execute(sa.text("SELECT 1"))
            finally:
                engine.dispose()
            _problems[url] = None
        except Exception as exc:  # any driver or network error means "not here"
            _problems[url] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    return _problems[url]
