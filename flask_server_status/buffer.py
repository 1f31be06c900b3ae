"""Per-process request counters and the background thread that flushes them.

The request path calls :meth:`Buffer.add`: a dictionary update under a lock,
nothing else. A flusher thread, started lazily by the first request of each
process (so it exists in every worker that forked after the app was loaded),
hands the counts to a writer every ``FLASK_STATUS_FLUSH_INTERVAL`` seconds.
If the writer fails the counts go back into the buffer and are retried on
the next flush; the buffer is bounded, and what it has to drop is counted
and logged. At interpreter exit the thread is stopped and a last flush runs.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from bisect import bisect_left
from collections.abc import Callable
from time import time

from .config import HISTOGRAM_SIZE, LATENCY_BOUNDS_MS

log = logging.getLogger("flask_server_status")

#: (rule, epoch minute, status code)
Key = tuple[str, int, int]
#: [count, latency sum ms, latency max ms, h0 .. hN]
Slot = list[float]
Counts = dict[Key, Slot]

_SLOT_SIZE = 3 + HISTOGRAM_SIZE


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
        them all or raises, in which case they are put back.
    :param interval: seconds between background flushes.
    :param max_keys: most distinct (rule, minute, status) keys held; past that
        new keys are dropped and counted in :attr:`dropped`.
    """

    def __init__(self, writer: Callable[[Counts], None], interval: float, max_keys: int) -> None:
        self._writer = writer
        self.interval = interval
        self.max_keys = max_keys
        self._counts: Counts = {}
        self._lock = threading.Lock()
        # Serialises whole flushes so that the exit flush waits for a
        # background one in progress instead of racing it.
        self._flush_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        #: Requests this process could not keep (buffer full).
        self.dropped = 0
        #: Flushes that failed and were put back for a retry.
        self.failures = 0
        self.last_error: BaseException | None = None
        _register(self)

    # -- request path -------------------------------------------------------

    def add(self, rule: str, status: int, seconds: float) -> None:
        """Count one request. Called on every response: keep it cheap."""
        if self._thread is None:
            self._start()
        ms = seconds * 1000.0
        key = (rule, int(time()) // 60, status)
        with self._lock:
            slot = self._counts.get(key)
            if slot is None:
                if len(self._counts) >= self.max_keys:
                    self.dropped += 1
                    return
                slot = self._counts[key] = [0] * _SLOT_SIZE
            slot[0] += 1
            slot[1] += ms
            if ms > slot[2]:
                slot[2] = ms
            slot[3 + bisect_left(LATENCY_BOUNDS_MS, ms)] += 1

    # -- flushing -----------------------------------------------------------

    def pending(self) -> int:
        """Requests counted in this process and not yet written."""
        with self._lock:
            return int(sum(slot[0] for slot in self._counts.values()))

    def take(self) -> Counts:
        """Remove and return everything counted so far."""
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
            self.dropped += lost
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
                self._writer(counts)
            except BaseException as exc:
                self.failures += 1
                self.last_error = exc
                self.put_back(counts)
                raise
            self.last_error = None
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
        thread.start()

    def _background_flush(self) -> None:
        try:
            self.flush()
        except Exception as exc:
            log.warning(
                "flask-server-status: flush failed, %d requests kept for the next one: %s",
                self.pending(),
                exc,
            )

    def stop(self, flush: bool = True, timeout: float = 10.0) -> None:
        """Stop the background thread and, by default, flush what is left."""
        thread = self._thread
        self._stop.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self._thread = None
        if flush:
            self._background_flush()

    def _after_fork(self) -> None:
        # The child starts with a copy of the parent's counts, which the
        # parent will write itself; writing them here too would double them.
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._counts = {}
        self._thread = None
        self._stop = threading.Event()


def _run(ref: weakref.ref[Buffer]) -> None:
    while True:
        buffer = ref()
        if buffer is None:
            return
        stop, interval = buffer._stop, buffer.interval
        del buffer
        if stop.wait(interval):
            return
        buffer = ref()
        if buffer is None:
            return
        buffer._background_flush()
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
        if buffer._thread is not None or buffer._counts:
            buffer.stop(flush=True)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_at_exit)
