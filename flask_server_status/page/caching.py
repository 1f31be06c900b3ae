"""Caching of the public answers: HTTP headers, ETags, and a short reuse of renderings.

Every answer is ``Cache-Control: public, max-age=FLASK_STATUS_CACHE_SECONDS``
with a strong ETag that Werkzeug computes from the body (``add_etag``), and
``make_conditional`` turns a matching ``If-None-Match`` into a 304.

:class:`PageCache` keeps a rendered body for a few seconds under the
snapshot's version, which changes with the data (from any process) and with
the minute, so a reused body is never older than its data.
``bench/page.py --caches`` measures what it saves (see the README).
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from flask import Response, request
from markupsafe import Markup

from .memo import StripMemo

if TYPE_CHECKING:
    from ..state import StatusState


class PageCache:
    """Rendered answers for ``ttl`` seconds, keyed by what they were built from.

    ``ttl`` 0 turns caching off. At most ``size`` answers are kept.
    """

    def __init__(self, ttl: float, size: int = 64) -> None:
        self.ttl = ttl
        self.size = size
        self._items: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_build(self, key: Hashable, build: Callable[[], Any]) -> Any:
        if self.ttl <= 0:
            return build()
        started = time.monotonic()
        with self._lock:
            hit = self._items.get(key)
        if hit is not None and started - hit[0] < self.ttl:
            return hit[1]
        value = build()
        with self._lock:
            self._items[key] = (started, value)
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value


class PageParts:
    """What the page keeps per app and process: its rendering cache and last minutes."""

    def __init__(self, state: StatusState) -> None:
        self.cache = PageCache(state.settings.page_cache_seconds)
        #: ``{route id: (day of its last data, last minute)}``: a quiet route's last
        #: counted minute, read once per change of its last day.
        self.last_minutes: dict[int, tuple[datetime, datetime | None]] = {}
        self.lock = threading.Lock()
        #: The page's rows and squares, and summary.json's components and series,
        #: of the previous answer (:mod:`.memo`).
        self.rows: StripMemo[Markup] = StripMemo()
        self.entries: StripMemo[str] = StripMemo()


_parts: weakref.WeakKeyDictionary[StatusState, PageParts] = weakref.WeakKeyDictionary()
_parts_lock = threading.Lock()


def parts_of(state: StatusState) -> PageParts:
    """The :class:`PageParts` of an app's state, made on first use."""
    with _parts_lock:
        parts = _parts.get(state)
        if parts is None:
            parts = _parts[state] = PageParts(state)
        return parts


def respond(body: str | bytes, mimetype: str, state: StatusState, vary_language: bool) -> Response:
    """``body`` with caching headers and an ETag; a matching ``If-None-Match`` gets a 304."""
    response = Response(body, mimetype=mimetype)
    response.headers["Cache-Control"] = f"public, max-age={state.settings.cache_seconds}"
    if vary_language:
        response.vary.add("Accept-Language")
    response.add_etag()
    response.make_conditional(request)  # a 304 without a body when the ETag matches
    return response


def unavailable(response: Response) -> Response:
    """A 503 for a database that cannot answer: never cached, try again in 30 s."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Retry-After"] = "30"
    return response
