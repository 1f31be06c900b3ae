"""One way to write a percent, a time, a duration and a number, for every reader.

The page, the Atom feed, the badges, the CLI and the admin all write figures
through these functions, so "99.99%" or "2 h 10 min" reads the same wherever
it is shown. They are pure (no request, no app): ``now`` is always passed in,
which lets tests stand at a chosen minute.

Language-dependent words ("ago", "just now") are parameters with English
defaults; the page passes its own texts from :mod:`.i18n`.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

#: What stands for "no figure": an en dash.
MISSING = "\u2013"
_ZERO = timedelta(0)


def iso(moment: datetime | None) -> str | None:
    """UTC ISO 8601 with ``Z``, to the second, for machines; None stays None.

    >>> iso(datetime(2026, 12, 1, 0, 51, tzinfo=timezone.utc))
    '2026-12-01T00:51:00Z'
    """
    if moment is None:
        return None
    if moment.utcoffset() != _ZERO:
        moment = moment.astimezone(timezone.utc)
    # Fields rather than strftime: summary.json writes 7,500 of these per answer,
    # and strftime was most of its time (bench/page.py).
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
        f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}Z"
    )


def utc_time(moment: datetime | None, missing: str = "-") -> str:
    """The exact minute for people: ``"2026-12-01 00:51 UTC"``.

    >>> utc_time(datetime(2026, 12, 1, 0, 51, tzinfo=timezone.utc))
    '2026-12-01 00:51 UTC'
    """
    if moment is None:
        return missing
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def utc_date(moment: datetime | None, missing: str = "-") -> str:
    """A UTC day for people: ``"2026-12-01 UTC"``."""
    if moment is None:
        return missing
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d UTC")


def percent(value: float | None, missing: str = MISSING) -> str:
    """A percentage with two decimals; never rounds a failure up to a perfect score.

    >>> percent(99.996), percent(100.0), percent(None, missing="-")
    ('99.99%', '100.00%', '-')
    """
    if value is None:
        return missing
    if 99.995 <= value < 100:
        return "99.99%"
    return f"{value:.2f}%"


def decimal(value: float | None, places: int = 1, unit: str = "", missing: str = MISSING) -> str:
    """A measured figure such as a latency: ``decimal(12.34, unit=" ms") == "12.3 ms"``."""
    if value is None:
        return missing
    return f"{value:.{places}f}{unit}"


def count(value: int) -> str:
    """A count with thousands separators: ``"12,345"``."""
    return f"{value:,}"


def duration(delta: timedelta) -> str:
    """A duration to the minute, largest unit first: ``"2 h 10 min"``, ``"3 d 0 h 5 min"``.

    Under a minute reads ``"0 min"``: the data is counted per minute.

    >>> duration(timedelta(hours=2, minutes=10, seconds=59))
    '2 h 10 min'
    """
    minutes = max(0, int(delta.total_seconds() // 60))
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days} d {hours} h {minutes} min"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min"


def short_duration(delta: timedelta) -> str:
    """A duration with at most two units, for "ago" texts: ``"2 h 10 min"``, ``"3 d 4 h"``."""
    minutes = max(0, int(delta.total_seconds() // 60))
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min"


def relative(
    moment: datetime, now: datetime, ago: str = "{} ago", just_now: str = "just now"
) -> str:
    """How long before ``now`` ``moment`` was: ``"3 min ago"``, ``"2 h 10 min ago"``.

    Within the same minute (or in the future, a clock a little ahead) it is
    ``just_now``.

    :param ago: the pattern around the duration, ``"hace {}"`` in Spanish.
    """
    delta = now - moment
    if delta < timedelta(minutes=1):
        return just_now
    return ago.format(short_duration(delta))


def budget(fraction: float | None, missing: str = MISSING) -> str:
    """An error budget left (a fraction) as a percent to 0.1: ``"50.0%"``, ``"-150.0%"``.

    Like :func:`percent`, it never rounds a spent budget up to an untouched one.

    >>> budget(0.5), budget(0.99996), budget(1.0), budget(-1.5)
    ('50.0%', '99.9%', '100.0%', '-150.0%')
    """
    if fraction is None:
        return missing
    value = fraction * 100
    if 99.95 <= value < 100:
        return "99.9%"
    return f"{value:.1f}%"


def burn_rate(rate: float | None, missing: str = MISSING) -> str:
    """A burn rate with two decimals: ``"0.50"`` (1 spends the budget exactly in its window)."""
    if rate is None:
        return missing
    return f"{rate:.2f}"


def milliseconds(value: float | None, missing: str = MISSING) -> str:
    """A latency in whole milliseconds, rounded up (never reads faster than measured).

    >>> milliseconds(17.2), milliseconds(1204.0), milliseconds(None, missing="-")
    ('18 ms', '1,204 ms', '-')
    """
    if value is None:
        return missing
    return f"{math.ceil(value):,} ms"
