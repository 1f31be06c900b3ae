"""The judgement: what the exact counts say about a route, as pure functions.

Counting is exact; verdicts are where a status page earns or loses trust.
Everything here works on plain numbers, minutes and settings (no database,
no Flask), so that the stateless readers (:mod:`.queries`: CLI, admin, API)
and the incremental one (:mod:`.snapshots`: the page) judge alike, and so
that a per-route value (failure codes, latency threshold, SLO target) can be
passed in place of the global one.

The rules (DESIGN.md, "Verdicts people can trust"):

* **Classification** (:func:`classify`): 100-399 succeed; every 5xx and the
  failure codes (404 by default) fail; other 4xx are neutral. A 404 answered
  by a rule with URL variables (``/items/<int:id>``) is neutral by default:
  the item asked for does not exist, the service works.
* **Sample size** (:func:`reach_back`, :func:`judge`): the status window
  reaches back minute by minute (up to 60) until it holds ``min_requests``
  classified requests, and a verdict on fewer is never worse than
  ``degraded_performance``.
* **Latency** (:func:`latency_breached`): a window p95 over the threshold,
  on enough requests, makes a route at least ``degraded_performance``.
* **Incidents** (:func:`find_outages`): a minute *fails* when it reaches the
  partial-outage ratio with at least ``incident_min_failures`` failures; an
  incident opens after ``incident_open_minutes`` failing minutes in a row and
  closes after ``incident_close_minutes`` minutes with traffic and no failing
  minute.
* **Error budget** (:func:`slo_figures`): budget left and burn rates from
  exact counts.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from typing import TYPE_CHECKING

from .config import FAILURE, NEUTRAL, SUCCESS
from .models import UNMATCHED_RULE

if TYPE_CHECKING:
    from .config import Settings

OPERATIONAL = "operational"
DEGRADED = "degraded_performance"
PARTIAL_OUTAGE = "partial_outage"
MAJOR_OUTAGE = "major_outage"
NO_DATA = "no_data"
#: From best to worst; the overall status is the worst of the routes'.
STATUSES = (NO_DATA, OPERATIONAL, DEGRADED, PARTIAL_OUTAGE, MAJOR_OUTAGE)

#: How far back (minutes, including the current one) a status window may reach
#: to find enough classified requests.
REACH_BACK_LIMIT = 60

#: A 1-hour burn rate above this spends a 30-day budget in about two days: the
#: classic "page someone" threshold (Google SRE workbook, "Alerting on SLOs").
PAGE_BURN_RATE = 14.4

ONE_MINUTE = timedelta(minutes=1)


# -- classification --------------------------------------------------------------------


def has_variables(rule: str) -> bool:
    """Whether a URL rule has variables (``/items/<int:id>``); the unmatched row has none.

    >>> has_variables("/items/<int:id>"), has_variables("/about")
    (True, False)
    """
    return "<" in rule and rule != UNMATCHED_RULE


def classify(
    settings: Settings, code: int, rule: str, failure_codes: Collection[int] | None = None
) -> int:
    """:data:`SUCCESS`, :data:`FAILURE` or :data:`NEUTRAL` for ``code`` answered by ``rule``.

    100-399 succeed; every 5xx fails; a 4xx fails when it is one of the
    failure codes (``FLASK_STATUS_FAILURE_CODES``, 404 by default), except a
    404 from a rule with URL variables, which counts as
    ``FLASK_STATUS_VARIABLE_RULE_404`` says ("neutral" by default: the item
    does not exist, the service works). Any other 4xx is the client's fault:
    neutral. Requests that matched no rule are classified as a rule without
    variables (they are counted apart and never shown).

    :param failure_codes: the route's own failure codes, replacing the global
        set; ``None``: the global set.
    """
    if code < 400:
        return SUCCESS
    if code >= 500:
        return FAILURE
    codes = settings.failure_codes if failure_codes is None else failure_codes
    if code not in codes:
        return NEUTRAL
    if code == 404 and has_variables(rule) and settings.variable_rule_404 != "failure":
        return NEUTRAL
    return FAILURE


# -- a route's current status ---------------------------------------------------------------


def ratio_status(failures: int, classified: int, settings: Settings) -> str:
    """The status the failure ratio alone gives, with the configured thresholds."""
    if classified <= 0:
        return NO_DATA
    ratio = failures / classified
    if ratio >= settings.major_outage_ratio:
        return MAJOR_OUTAGE
    if ratio >= settings.partial_outage_ratio:
        return PARTIAL_OUTAGE
    if ratio >= settings.degraded_ratio:
        return DEGRADED
    return OPERATIONAL


def worst(*statuses: str) -> str:
    """The worst of ``statuses`` (``no_data`` is the best: it says nothing)."""
    return max(statuses, key=STATUSES.index, default=NO_DATA)


def judge(
    failures: int, classified: int, settings: Settings, min_requests: int | None = None
) -> str:
    """The status of counts, with the sample-size rule.

    On fewer than ``min_requests`` classified requests (default
    ``FLASK_STATUS_MIN_REQUESTS``) the verdict is never worse than
    ``degraded_performance``: one failed request on a quiet route is not an
    outage.
    """
    status = ratio_status(failures, classified, settings)
    needed = settings.min_requests if min_requests is None else min_requests
    if classified < needed and STATUSES.index(status) > STATUSES.index(DEGRADED):
        return DEGRADED
    return status


def reach_back(
    classified: Sequence[int],
    window: int,
    min_requests: int,
    limit: int = REACH_BACK_LIMIT,
) -> int:
    """How many minutes a status window spans: ``window``, or more until it holds enough.

    :param classified: classified requests per minute, oldest first, the last
        one the current minute; at least ``max(window, limit)`` long, or
        shorter when there is no more history to read.
    :param window: the status window (``FLASK_STATUS_STATUS_WINDOW``).
    :param min_requests: classified requests a verdict needs.
    :param limit: the furthest the window may reach (60 minutes).

    >>> reach_back([0] * 50 + [4, 0, 3, 0, 1, 2, 0, 0, 0, 0], 5, 10)
    9
    >>> reach_back([0] * 60, 5, 10)
    60
    """
    span = min(max(window, limit), len(classified))
    length = min(window, span)
    held = sum(classified[len(classified) - length :])
    while held < min_requests and length < span:
        length += 1
        held += classified[-length]
    return length


def latency_breached(
    p95_ms: float | None, requests: int, threshold_ms: float | None, min_requests: int
) -> bool:
    """Whether a window's p95 is over the threshold, on at least ``min_requests`` requests.

    :param threshold_ms: the route's or the global threshold; ``None``: off.
    """
    return (
        threshold_ms is not None
        and p95_ms is not None
        and requests >= min_requests
        and p95_ms > threshold_ms
    )


# -- incidents ------------------------------------------------------------------------------


def is_failing(failures: int, successes: int, ratio: float, min_failures: int = 1) -> bool:
    """Whether a minute fails: at least ``min_failures`` failures and the ratio reached.

    >>> is_failing(3, 0, 0.1, 3), is_failing(2, 0, 0.1, 3), is_failing(3, 100, 0.1, 3)
    (True, False, False)
    """
    return failures >= max(1, min_failures) and failures / (failures + successes) >= ratio


@dataclass(slots=True)
class Outage:
    """An incident as the minutes show it: from its first to its last failing minute."""

    #: Start of the first failing minute.
    start: datetime
    #: End of the last failing minute.
    end: datetime
    #: Failures and classified requests of its failing minutes.
    failures: int
    requests: int
    #: The worst failing minute's failure ratio (0-1).
    peak_ratio: float
    #: Not yet closed: fewer than ``close_minutes`` minutes with traffic since its end.
    ongoing: bool = False


#: Minutes with classified traffic strictly between two minute starts; an
#: answer may stop counting at ``close_minutes``.
TrafficBetween = Callable[[datetime, datetime], int]


def find_outages(
    failing: Iterable[tuple[datetime, int, int]],
    traffic_between: TrafficBetween,
    now: datetime,
    open_minutes: int,
    close_minutes: int,
) -> list[Outage]:
    """One route's incidents, oldest first, from its failing minutes (hysteresis).

    An incident opens with ``open_minutes`` failing minutes in a row (minutes
    that follow each other; a minute without traffic breaks the row) and
    starts at the first of them. It takes in every later failing minute until
    ``close_minutes`` minutes with classified traffic and no failing minute
    have passed (minutes without traffic neither count nor break the count: a
    quiet route has not shown it recovered). It ends at the end of its last
    failing minute, so a flapping route gives one incident, and the duration
    is the outage's, not the detector's delay. Failing minutes outside an
    incident that make no row long enough are left alone.

    :param failing: ``(minute start, failures, classified requests)`` of the
        route's failing minutes, in time order.
    :param traffic_between: minutes with classified traffic strictly between
        two minute starts (asked only about gaps of at least ``close_minutes``
        minutes; it may stop counting at ``close_minutes``).
    :param now: the current minute's start: the last incident is ongoing
        unless enough minutes up to and including this one closed it.
    """
    found: list[Outage] = []
    current: Outage | None = None
    row: list[tuple[datetime, int, int]] = []
    last: datetime | None = None

    def closed_between(after: datetime, before: datetime) -> bool:
        # A gap shorter than close_minutes cannot hold enough minutes: no question asked.
        if before - after <= close_minutes * ONE_MINUTE:
            return False
        return traffic_between(after, before) >= close_minutes

    for minute, fail, classified in failing:
        if current is not None and last is not None:
            if not closed_between(last, minute):
                current.end = minute + ONE_MINUTE
                current.failures += fail
                current.requests += classified
                current.peak_ratio = max(current.peak_ratio, fail / classified)
                last = minute
                continue
            current = None
        if row and minute - row[-1][0] == ONE_MINUTE:
            row.append((minute, fail, classified))
        else:
            row = [(minute, fail, classified)]
        last = minute
        if len(row) >= open_minutes:
            current = Outage(
                start=row[0][0],
                end=minute + ONE_MINUTE,
                failures=sum(item[1] for item in row),
                requests=sum(item[2] for item in row),
                peak_ratio=max(item[1] / item[2] for item in row),
            )
            found.append(current)
            row = []
    if current is not None and last is not None:
        current.ongoing = not closed_between(last, now + ONE_MINUTE)
    return found


# -- service level objectives -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Slo:
    """A route's error budget and burn rates, from exact counts."""

    #: The objective in percent (e.g. 99.9).
    target: float
    window_days: int
    #: Successes and failures over the SLO window.
    good: int
    bad: int
    #: Fraction of the budget left (1: nothing spent, negative: overspent);
    #: None without traffic.
    budget_remaining: float | None
    #: How fast the budget burns (1: exactly spent at the window's end); None without traffic.
    burn_rate_1h: float | None
    burn_rate_6h: float | None

    @property
    def paging(self) -> bool:
        """A 1-hour burn rate above :data:`PAGE_BURN_RATE`: someone should look now."""
        return self.burn_rate_1h is not None and self.burn_rate_1h > PAGE_BURN_RATE

    def to_dict(self) -> dict[str, float | int | None]:
        """The ``"slo"`` object of a ``summary.json`` component."""
        return {
            "target": self.target,
            "window_days": self.window_days,
            "good": self.good,
            "bad": self.bad,
            "budget_remaining": self.budget_remaining,
            "burn_rate_1h": self.burn_rate_1h,
            "burn_rate_6h": self.burn_rate_6h,
        }


def _allowed(target: float) -> Fraction:
    """The failure ratio the objective allows, exactly (99.9 -> 1/1000)."""
    return 1 - Fraction(str(target)) / 100


def burn_rate(good: int, bad: int, target: float) -> float | None:
    """(bad / classified) / (1 - target/100); None without traffic.

    With a 100 % target no failure is allowed: 0 without failures, else None
    (an infinite rate has no number).

    >>> burn_rate(199, 1, 99.0)
    0.5
    """
    if good + bad == 0:
        return None
    allowed = _allowed(target)
    if allowed == 0:
        return 0.0 if bad == 0 else None
    return float(Fraction(bad, good + bad) / allowed)


def budget_remaining(good: int, bad: int, target: float) -> float | None:
    """1 - bad / ((1 - target/100) x classified); None without traffic.

    1 when nothing failed, negative when overspent. With a 100 % target: 1
    without failures, else None (there was no budget to spend).

    >>> budget_remaining(199, 1, 99.0)
    0.5
    """
    if good + bad == 0:
        return None
    allowed = _allowed(target)
    if allowed == 0:
        return 1.0 if bad == 0 else None
    return float(1 - Fraction(bad) / (allowed * (good + bad)))


def slo_figures(
    target: float,
    window_days: int,
    window: tuple[int, int],
    last_1h: tuple[int, int],
    last_6h: tuple[int, int],
) -> Slo:
    """A route's :class:`Slo` from (good, bad) counts over the SLO window, 1 h and 6 h.

    :param target: the route's or the global objective, in percent.
    """
    good, bad = window
    return Slo(
        target=target,
        window_days=window_days,
        good=good,
        bad=bad,
        budget_remaining=budget_remaining(good, bad, target),
        burn_rate_1h=burn_rate(*last_1h, target),
        burn_rate_6h=burn_rate(*last_6h, target),
    )
