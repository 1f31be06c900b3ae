"""Per-process request counters and the background thread that flushes them.

The request path appends one tuple to a :class:`~collections.deque` (atomic
under the GIL, so no lock) and nothing else. A background thread, started
lazily by the first request of each process (so it exists in every worker
that forked after the app was loaded), drains those events every second
into counters per (rule, minute, status) and hands the counters to a writer
every ``FLASK_STATUS_FLUSH_INTERVAL`` seconds. If the writer fails the
counters go back into the buffer and are retried on the next flush; both
the event queue and the counters are bounded, and what has to be dropped is
counted and logged. At interpreter exit the thread is stopped and a last
flush runs.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import threading
import weakref
from bisect import bisect_left
from collections import deque
from collections.abc import Callable
from time import monotonic, perf_counter, time
from typing import Any

from .config import HISTOGRAM_SIZE, LATENCY_BOUNDS_MS
from .models import UNMATCHED_RULE

log = logging.getLogger("flask_server_status")

#: What the capture middleware queues per response: ([(status line, matched
#: Rule or None), ...] as sent, perf_counter at start, perf_counter at end).
Event = tuple[list[tuple[str, Any]], float, float]
#: (rule, epoch minute, status code)
Key = tuple[str, int, int]
#: [count, latency sum ms, latency max ms, h0 .. hN]
Slot = list[float]
Counts = dict[Key, Slot]

_SLOT_SIZE = 3 + HISTOGRAM_SIZE
#: Seconds between drains of the event queue into the counters.
DRAIN_INTERVAL = 1.0
#: Most events queued between two drains (a second's traffic, normally).
MAX_EVENTS = 200_000


class _Rule:
    """Stands in for a werkzeug Rule in events queued by :meth:`Buffer.add`."""

    __slots__ = ("rule",)

    def __init__(self, rule: str) -> None:
        self.rule = rule


def _merge(into: Counts, slot_key: Key, slot: Slot) -> None:
    mine = into.get(slot_key)
    if mine is None:
        into[slot_key] = slot
        return
    mine[0] += slot[0]
    mine[1] += slot[1]
    if slot[2] > mine[2]:
        mine[2] = slot[2]
    for i in range(3, _SLOT_SIZE):
        mine[i] += slot[i]


class Buffer:
    """Counts requests in memory until a flush takes them.

    :param writer: called with the taken counts by :meth:`flush`; it writes
        them all (returning how many requests it stored, or None) or raises,
        in which case they are put back.
    :param interval: seconds between background flushes.
    :param max_keys: most distinct (rule, minute, status) keys held; past that
        new keys are dropped and counted in :attr:`dropped`.
    """

    def __init__(
        self, writer: Callable[[Counts], int | None], interval: float, max_keys: int
    ) -> None:
        self._writer = writer
        self.interval = interval
        self.max_keys = max_keys
        self._events: deque[Event] = deque()
        self._dropped_events = itertools.count()
        self._counts: Counts = {}
        self._lock = threading.Lock()
        # Serialises whole flushes so that the exit flush waits for a
        # background one in progress instead of racing it.
        self._flush_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._dropped = 0
        self._dropped_logged = 0
        #: Flushes that failed and were put back for a retry.
        self.failures = 0
        self.last_error: BaseException | None = None
        _register(self)

    # -- request path -------------------------------------------------------

    def add(self, rule: str, status: int, seconds: float) -> None:
        """Count one request to ``rule`` answered ``status`` after ``seconds``.

        The capture middleware queues the same event inline; this is for
        other sources (tests, benchmarks, a non-Flask front end).
        """
        if self._thread is None:
            self._start()
        if len(self._events) < MAX_EVENTS:
            end = perf_counter()
            self._events.append(([(f"{status} ", _Rule(rule))], end - seconds, end))
        else:
            self.count_dropped()

    def count_dropped(self) -> None:
        next(self._dropped_events)  # itertools.count: atomic, unlike += 1

    @property
    def dropped(self) -> int:
        """Requests this process could not keep (queue or counters full)."""
        self.drain()
        # itertools.count has no getter; its repr is "count(N)".
        queued = int(repr(self._dropped_events)[6:-1])
        return self._dropped + queued

    def drain(self) -> None:
        """Move queued events into the per-minute counters."""
        events = self._events
        popleft = events.popleft
        bounds = LATENCY_BOUNDS_MS
        # perf_counter readings to wall-clock time; the two clocks drift
        # apart by far less than a minute within the second between drains.
        to_wall = time() - perf_counter()
        with self._lock:
            counts = self._counts
            room = self.max_keys
            for _ in range(len(events)):
                sent, start, end = popleft()
                status, rule = sent[-1] if sent else ("500", None)
                key = (
                    UNMATCHED_RULE if rule is None else rule.rule,
                    int(end + to_wall) // 60,
                    int(status[:3]),
                )
                slot = counts.get(key)
                if slot is None:
                    if len(counts) >= room:
                        self._dropped += 1
                        continue
                    slot = counts[key] = [0] * _SLOT_SIZE
                ms = (end - start) * 1000.0
                slot[0] += 1
                slot[1] += ms
                if ms > slot[2]:
                    slot[2] = ms
                slot[3 + bisect_left(bounds, ms)] += 1

    # -- flushing -----------------------------------------------------------

    def pending(self) -> int:
        """Requests counted in this process and not yet written."""
        self.drain()
        with self._lock:
            return int(sum(slot[0] for slot in self._counts.values()))

    def take(self) -> Counts:
        """Remove and return everything counted so far."""
        self.drain()
        with self._lock:
            counts, self._counts = self._counts, {}
        return counts

    def put_back(self, counts: Counts) -> None:
        """Return counts a failed write could not store, within the bound."""
        lost = 0
        with self._lock:
            for key, slot in counts.items():
                if key not in self._counts and len(self._counts) >= self.max_keys:
                    lost += int(slot[0])
                    continue
                _merge(self._counts, key, slot)
            self._dropped += lost
        if lost:
            log.error("flask-server-status: buffer full, dropped %d requests", lost)

    def flush(self) -> int:
        """Write what is buffered now; return how many requests were written.

        Raises what the writer raised, after putting the counts back.
        """
        with self._flush_lock:
            counts = self.take()
            if not counts:
                return 0
            try:
                written = self._writer(counts)
            except BaseException as exc:
                self.failures += 1
                self.last_error = exc
                self.put_back(counts)
                raise
            self.last_error = None
            # The writer knows best: requests to untracked rules (static files,
            # our own page) were taken but not stored.
            if isinstance(written, int):
                return written
            return int(sum(slot[0] for slot in counts.values()))

    # -- the background thread ----------------------------------------------

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._stop.clear()
            thread = threading.Thread(
                target=_run, args=(weakref.ref(self),), name="flask-server-status-flush"
            )
            thread.daemon = True
            self._thread = thread
        try:
            thread.start()
        except RuntimeError as exc:
            # Counting must never break a request. The unstarted thread stays
            # in place so requests do not retry; counts wait for flush() or
            # the exit flush.
            log.error("flask-server-status: cannot start the flusher thread: %s", exc)

    def _background_flush(self) -> None:
        try:
            self.flush()
        except Exception as exc:
            log.warning(
                "flask-server-status: flush failed, %d requests kept for the next one: %s",
                self.pending(),
                exc,
            )
        dropped = self.dropped
        if dropped > self._dropped_logged:
            log.error(
                "flask-server-status: buffer full, %d requests dropped in this process so far",
                dropped,
            )
            self._dropped_logged = dropped

    def stop(self, flush: bool = True, timeout: float = 10.0) -> None:
        """Stop the background thread and, by default, flush what is left."""
        thread = self._thread
        self._stop.set()
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(timeout)
        self._thread = None
        if flush:
            self._background_flush()

    def _after_fork(self) -> None:
        # The child starts with a copy of the parent's counts, which the
        # parent will write itself; writing them here too would double them.
        # The deque is cleared, not replaced: the middleware holds its append.
        self._events.clear()
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._counts = {}
        self._thread = None
        self._stop = threading.Event()


def _run(ref: weakref.ref[Buffer]) -> None:
    """The flusher: drain every second, flush every interval, until stopped.

    It holds the buffer only weakly between rounds, so that an app thrown
    away ends its thread.
    """
    next_flush = None
    while True:
        buffer = ref()
        if buffer is None:
            return
        stop = buffer._stop
        if next_flush is None:
            next_flush = monotonic() + buffer.interval
        wait = min(DRAIN_INTERVAL, max(0.0, next_flush - monotonic()))
        del buffer
        if stop.wait(wait):
            return
        buffer = ref()
        if buffer is None:
            return
        try:
            buffer.drain()
            if monotonic() >= next_flush:
                next_flush = monotonic() + buffer.interval
                buffer._background_flush()
        except Exception:  # never let the thread die; the next round retries
            log.exception("flask-server-status: flusher round failed")
        del buffer


# Buffers alive in this process, for the fork and exit hooks. A WeakSet keeps
# an app that was thrown away (tests create hundreds) collectable.
_buffers: weakref.WeakSet[Buffer] = weakref.WeakSet()


def _register(buffer: Buffer) -> None:
    _buffers.add(buffer)


def _after_fork_in_child() -> None:
    for buffer in list(_buffers):
        buffer._after_fork()


def _at_exit() -> None:
    for buffer in list(_buffers):
        if buffer._thread is not None or buffer._counts or buffer._events:
            buffer.stop(flush=True)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_at_exit)
