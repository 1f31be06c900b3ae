"""Per-process request counters, the threads that drain and flush them, the exit flush.

The request path hands one event to :meth:`Buffer.record`: a
:class:`~collections.deque` append (atomic under the GIL, so no lock) and
nothing else. Two background threads, started lazily by the first request
of each process (so they exist in every worker that forked after the app was
loaded), do the rest:

* the **drain** thread, every second, moves the queued events into counters
  per (rule, minute, status) and appends the same counts to the local
  :mod:`.journal`, so a process killed by ``SIGKILL`` or the OOM killer loses
  only the last second or two;
* a **flush** thread, every ``FLASK_STATUS_FLUSH_INTERVAL`` seconds, hands the
  counters to a writer. It is a thread of its own so that a database that
  hangs holds up the flush and nothing else: draining goes on, and the next
  flush starts only once the hung one has returned.

If the writer fails the counters go back into the buffer (and stay in the
journal) for the next flush. Both the event queue and the counters are
bounded; what has to be dropped is counted in :attr:`Buffer.dropped` and
logged. At interpreter exit the threads stop, a last drain reaches the
journal, and a last flush runs for a bounded time; what it could not write
is written by the next process on the host (:mod:`.journal`).
"""

from __future__ import annotations

import atexit
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
from .journal import DEFAULT_EXIT_FLUSH_TIMEOUT, Counts, InTransaction, Journal, Key, Slot
from .models import UNMATCHED_RULE

log = logging.getLogger("flask_server_status")

__all__ = ["Buffer", "Counts", "Event", "Key", "Slot", "live_buffers"]

#: What the capture middleware queues per response: (status line, the
#: matched rule's string or None, perf_counter at start, perf_counter at
#: end). Only strings, floats and None, on purpose: the garbage collector
#: stops tracking such a tuple at its first young collection, so the second's
#: worth of events waiting for the drain is never promoted to the old
#: generation, whose growth is what triggers full collections (a queue of
#: tracked events cost more than the rest of the capture path, issue 15).
#: A response whose ``start_response`` has not run yet (a body that calls it
#: lazily) is queued as (the ``sent`` list, :data:`_LATER`, start, end) and
#: read at the drain.
Event = tuple[Any, Any, float, float]
#: Writes counts (running the callable, if any, inside its transaction) and
#: returns how many requests it stored, or None for all of them.
Writer = Callable[[Counts, "InTransaction | None"], "int | None"]

_SLOT_SIZE = 3 + HISTOGRAM_SIZE
#: Seconds between drains of the event queue into the counters.
DRAIN_INTERVAL = 1.0
#: Most events queued between two drains (a second's traffic, normally).
MAX_EVENTS = 200_000


#: Marks an event whose status is still to be read from its ``sent`` list.
_LATER = object()


def _last_sent(sent: list[tuple[str, Any]]) -> tuple[str, str | None]:
    """The status line and rule string of the last ``start_response`` call (500 if none)."""
    if not sent:
        return "500", None
    status, rule = sent[-1]
    return status, None if rule is None else rule.rule


class _Rule:
    """Stands in for a werkzeug Rule in events queued by :meth:`Buffer.add`."""

    __slots__ = ("rule",)

    def __init__(self, rule: str) -> None:
        self.rule = rule


def merge(into: Counts, slot_key: Key, slot: Slot) -> None:
    """Add ``slot`` to ``into[slot_key]``: counts and sums add, the maximum is kept."""
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

    :param writer: called by :meth:`flush` with the taken counts and a
        callable to run inside its transaction (the journal's record of what
        is written, or None); it writes them all (returning how many requests
        it stored, or None) or raises, in which case they are put back.
    :param interval: seconds between background flushes.
    :param max_keys: most distinct (rule, minute, status) keys held; past that
        new keys are dropped and counted in :attr:`dropped`.
    :param journal: where drained counts are kept on disk until written; None
        keeps them in memory only.
    :param exit_timeout: seconds the exit flush may take.
    """

    def __init__(
        self,
        writer: Writer,
        interval: float,
        max_keys: int,
        journal: Journal | None = None,
        exit_timeout: float = DEFAULT_EXIT_FLUSH_TIMEOUT,
    ) -> None:
        self._writer = writer
        self.interval = interval
        self.max_keys = max_keys
        self.journal = journal
        self.exit_timeout = exit_timeout
        self._events: deque[Event] = deque()
        self._counts: Counts = {}
        # Guards the counters, the journal's files and the dropped counter.
        self._lock = threading.Lock()
        # Serialises whole flushes so that the exit flush waits for a
        # background one in progress instead of racing it.
        self._flush_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._flusher: threading.Thread | None = None
        self._stop = threading.Event()
        self._dropped = 0
        self._dropped_logged = 0
        #: Flushes that failed and were put back for a retry.
        self.failures = 0
        self.last_error: BaseException | None = None
        _buffers.add(self)

    # -- request path -------------------------------------------------------

    def record(self, sent: list[tuple[str, Any]], start: float, end: float) -> None:
        """Queue one response: what it sent and two ``perf_counter`` readings.

        This is the whole per-request cost of counting, so it does nothing
        that can wait: the status code, minute and latency bucket are worked
        out later by the drain. It only takes the last status line and the
        rule's string out of ``sent``, so that the queued event holds no
        object the garbage collector has to track (see :data:`Event`).
        """
        events = self._events
        if len(events) < MAX_EVENTS:
            if sent:
                # Flattened to strings and floats now (see Event): a few
                # hundred instructions here save the collector far more.
                status, rule = sent[-1]
                events.append((status, None if rule is None else rule.rule, start, end))
            else:
                events.append((sent, _LATER, start, end))
        else:
            self.count_dropped()
        if self._thread is None:
            self._start()

    def add(self, rule: str, status: int, seconds: float) -> None:
        """Count one request to ``rule`` answered ``status`` after ``seconds``.

        For sources other than the capture middleware (tests, benchmarks, a
        non-Flask front end).
        """
        end = perf_counter()
        self.record([(f"{status} ", _Rule(rule))], end - seconds, end)

    def count_dropped(self, n: int = 1) -> None:
        """Count ``n`` requests that could not be kept (they show in :attr:`dropped`)."""
        with self._lock:
            self._dropped += n

    @property
    def dropped(self) -> int:
        """Requests this process could not keep (queue or counters full, or refused)."""
        self.drain()
        with self._lock:
            return self._dropped

    def drain(self) -> None:
        """Move queued events into the per-minute counters and the journal."""
        events = self._events
        if not events:
            return
        popleft = events.popleft
        bounds = LATENCY_BOUNDS_MS
        # perf_counter readings to wall-clock time; the two clocks drift
        # apart by far less than a minute within the second between drains.
        to_wall = time() - perf_counter()
        # Counted apart first, without the lock, so that this drain's counts
        # can go to the journal as one line.
        drained: Counts = {}
        for _ in range(len(events)):
            status, rule, start, end = popleft()
            if rule is _LATER:
                status, rule = _last_sent(status)
            key = (
                UNMATCHED_RULE if rule is None else rule,
                int(end + to_wall) // 60,
                int(status[:3]),
            )
            slot = drained.get(key)
            if slot is None:
                slot = drained[key] = [0] * _SLOT_SIZE
            ms = (end - start) * 1000.0
            slot[0] += 1
            slot[1] += ms
            if ms > slot[2]:
                slot[2] = ms
            slot[3 + bisect_left(bounds, ms)] += 1
        with self._lock:
            counts = self._counts
            room = self.max_keys
            for key, slot in list(drained.items()):
                mine = counts.get(key)
                if mine is None:
                    if len(counts) >= room:
                        self._dropped += int(slot[0])
                        del drained[key]
                        continue
                    counts[key] = list(slot)
                else:
                    merge(counts, key, slot)
            if self.journal is not None:
                self.journal.append(drained)

    # -- flushing -----------------------------------------------------------

    def pending(self) -> int:
        """Requests counted in this process and not yet written."""
        self.drain()
        with self._lock:
            return int(sum(slot[0] for slot in self._counts.values()))

    def take(self) -> Counts:
        """Remove and return everything counted so far."""
        return self._take()[0]

    def _take(self) -> tuple[Counts, list[str]]:
        self.drain()
        with self._lock:
            counts, self._counts = self._counts, {}
            segments = self.journal.rotate() if self.journal is not None else []
        return counts, segments

    def put_back(self, counts: Counts) -> None:
        """Return counts a failed write could not store, within the bound."""
        lost = 0
        with self._lock:
            for key, slot in counts.items():
                if key not in self._counts and len(self._counts) >= self.max_keys:
                    lost += int(slot[0])
                    continue
                merge(self._counts, key, slot)
            self._dropped += lost
        if lost:
            log.error("flask-server-status: buffer full, dropped %d requests", lost)

    def flush(self) -> int:
        """Write what is buffered now; return how many requests were written.

        First writes the journal of processes on this host that ended without
        writing theirs, if there is any. Raises what the writer raised, after
        putting the counts back.
        """
        with self._flush_lock:
            replayed = self._replay()
            counts, segments = self._take()
            journal = self.journal
            if not counts:
                if journal is not None and segments:
                    with self._lock:
                        journal.committed(segments)
                return replayed
            try:
                written = self._writer(
                    counts, journal.marker(segments) if journal is not None else None
                )
            except BaseException as exc:
                self.failures += 1
                self.last_error = exc
                self.put_back(counts)
                raise
            if journal is not None:
                with self._lock:
                    journal.committed(segments)
            self.last_error = None
            # The writer knows best: requests to untracked rules (static files,
            # our own page) were taken but not stored.
            if isinstance(written, int):
                return written + replayed
            return int(sum(slot[0] for slot in counts.values())) + replayed

    def _replay(self) -> int:
        # Another process's journal must never hold up this one's counts:
        # if it cannot be written now, it is tried again at the next flush.
        if self.journal is None:
            return 0
        try:
            return self.journal.replay(self._writer, merge)
        except Exception as exc:
            log.warning(
                "flask-server-status: writing the journal of an ended process failed;"
                " it is tried again at the next flush: %s",
                exc,
            )
            return 0

    # -- the background threads -------------------------------------------------

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._stop.clear()
            thread = threading.Thread(
                target=_run, args=(weakref.ref(self),), name="flask-server-status-drain"
            )
            thread.daemon = True
            self._thread = thread
        try:
            thread.start()
        except RuntimeError as exc:
            # Counting must never break a request. The unstarted thread stays
            # in place so requests do not retry; counts wait for flush() or
            # the exit flush.
            log.error("flask-server-status: cannot start the drain thread: %s", exc)

    @property
    def stopping(self) -> threading.Event:
        """Set when :meth:`stop` asks the drain thread to end."""
        return self._stop

    def has_work(self) -> bool:
        """Whether a thread runs or anything is counted or queued: an exit flush is due."""
        return self._thread is not None or bool(self._counts) or bool(self._events)

    def start_flush(self, replay_only: bool = False) -> bool:
        """Start a background flush unless one is still running; whether one started.

        ``replay_only``: write only what ended processes left in the journal.
        """
        running = self._flusher
        if running is not None and running.is_alive():
            return False
        target = self._background_replay if replay_only else self._background_flush
        thread = threading.Thread(target=target, name="flask-server-status-flush")
        thread.daemon = True
        self._flusher = thread
        try:
            thread.start()
        except RuntimeError as exc:
            log.error("flask-server-status: cannot start a flush thread: %s", exc)
            return False
        return True

    def _background_replay(self) -> None:
        with self._flush_lock:
            self._replay()

    def _background_flush(self) -> None:
        try:
            self.flush()
        except Exception as exc:
            where = ""
            if self.journal is not None:
                where = f" (and in the journal in {self.journal.directory})"
            log.warning(
                "flask-server-status: flush failed, %d requests kept for the next one%s: %s",
                self.pending(),
                where,
                exc,
            )
        dropped = self.dropped
        if dropped > self._dropped_logged:
            log.error(
                "flask-server-status: %d requests dropped in this process so far"
                " (buffer full or not storable)",
                dropped,
            )
            self._dropped_logged = dropped

    def stop(self, flush: bool = True, timeout: float | None = None) -> None:
        """Stop the background threads and, by default, flush what is left.

        The last drain reaches the journal first. The flush then gets
        ``timeout`` seconds (default :attr:`exit_timeout`), so a database
        that hangs cannot hold the process's exit; what it did not write
        stays in the journal for the next process on the host.

        ``flush=False`` throws away what is buffered, journal included.
        """
        thread = self._thread
        self._stop.set()
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(DRAIN_INTERVAL * 2)
        self._thread = None
        journal = self.journal
        if not flush:
            with self._lock:
                self._events.clear()
                self._counts = {}
                if journal is not None:
                    journal.discard()
                    journal.close()
            return
        self.drain()
        wait = self.exit_timeout if timeout is None else timeout
        exiting = threading.Thread(target=self._background_flush, name="flask-server-status-exit")
        exiting.daemon = True
        exiting.start()
        exiting.join(wait)
        hung = exiting.is_alive()
        if hung:
            log.error(
                "flask-server-status: the exit flush did not finish within %.0f s; %d requests %s",
                wait,
                self.pending(),
                "are left in the journal for the next process on this host"
                if journal is not None
                else "are lost (the journal is off)",
            )
        if journal is not None:
            with self._lock:
                # A hung flush may still commit: keep our segments locked
                # until the process ends, so nobody replays them meanwhile.
                journal.close(keep_lock=hung)

    def after_fork(self) -> None:
        """In a forked child: start empty, with fresh locks and no threads."""
        # The child starts with a copy of the parent's counts, which the
        # parent will write itself; writing them here too would double them.
        self._events.clear()
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._counts = {}
        self._thread = None
        self._flusher = None
        self._stop = threading.Event()
        if self.journal is not None:
            self.journal.after_fork()


def _run(ref: weakref.ref[Buffer]) -> None:
    """The drain thread: drain every second, start a flush every interval, until stopped.

    Its first round also starts a flush that only writes what processes gone
    before left in the journal. It holds the buffer only weakly between
    rounds, so that an app thrown away ends its thread.
    """
    next_flush = None
    first = True
    while True:
        buffer = ref()
        if buffer is None:
            return
        stop = buffer.stopping
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
                # A flush still hung on the database is left to finish; the
                # next one starts in the first round after it returns.
                if buffer.start_flush():
                    next_flush = monotonic() + buffer.interval
            elif first and buffer.journal is not None:
                # A process that starts writes what ended ones left, at once.
                buffer.start_flush(replay_only=True)
            first = False
        except Exception:  # never let the thread die; the next round retries
            log.exception("flask-server-status: drain round failed")
        del buffer


# Buffers alive in this process: the one list the fork and exit hooks walk.
# A WeakSet keeps an app that was thrown away (tests create hundreds)
# collectable.
_buffers: weakref.WeakSet[Buffer] = weakref.WeakSet()


def live_buffers() -> list[Buffer]:
    """The buffers alive in this process."""
    return list(_buffers)


def _after_fork_in_child() -> None:
    for buffer in live_buffers():
        buffer.after_fork()


def _at_exit() -> None:
    for buffer in live_buffers():
        if buffer.has_work():
            buffer.stop(flush=True)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_at_exit)
