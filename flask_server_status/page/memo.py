"""What the previous answer made of each row and strip, reused while its inputs are unchanged.

:class:`~flask_server_status.snapshots.SnapshotReader` hands out the same
:class:`~flask_server_status.queries.Bucket` and
:class:`~flask_server_status.queries.RouteStatus` objects while their data is
unchanged (within a minute: a new minute makes every route's status again).
So after a flush on one route, only that route's row differs from the
previous answer's, and only the strips holding the current minute or day.

A :class:`StripRun` hands back the previous answer's result for a key when
what it was made from compares equal (identity first, then equal values, so
an equal object read afresh is a hit too, and a changed one never is):

* a strip (:meth:`StripRun.strip`): its buckets; the result is its squares
  (the page) or its series as :func:`.summary.encode` wrote them;
* a whole row or ``summary.json`` component (:meth:`StripRun.reuse`): the
  route's status and whatever else it shows (the minute its relative times
  are written from, the settings...), given by the caller. A row that is
  reused keeps its strips too (``carry``), for the next time it changes.

Each answer reads what the previous answer under the same key (language)
kept, and keeps what it used, which then replaces it: rows and strips of
routes gone from the page are forgotten, and so are those of past minutes.
At most :data:`KEYS` keys are kept, the least recently used dropped first.
``bench/page.py --caches`` measures what this saves (the README has the figures).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Generic, TypeVar

from ..queries import Bucket

T = TypeVar("T")

#: Keys (languages, mount points) whose last answer is kept.
KEYS = 8

#: What a result was made from, and the result.
Entry = tuple[object, T]


class StripMemo(Generic[T]):
    """Results of the previous answer per key, kept with what they were made from."""

    def __init__(self) -> None:
        self._kept: OrderedDict[Hashable, dict[Hashable, Entry[T]]] = OrderedDict()
        self._lock = threading.Lock()

    def open(self, key: Hashable) -> StripRun[T]:
        """One answer's run; ``key`` is what every result depends on (language...)."""
        with self._lock:
            previous = self._kept.get(key, {})
        return StripRun(self, key, previous)

    def keep(self, key: Hashable, made: dict[Hashable, Entry[T]]) -> None:
        """Replace what is kept under ``key`` (called by :meth:`StripRun.close`)."""
        with self._lock:
            self._kept[key] = made
            self._kept.move_to_end(key)
            while len(self._kept) > KEYS:
                self._kept.popitem(last=False)

    def __len__(self) -> int:
        """Results kept under all keys (for tests: the memo stays bounded)."""
        with self._lock:
            return sum(len(made) for made in self._kept.values())


class StripRun(Generic[T]):
    """The results one answer made or reused, handed to the memo by :meth:`close`."""

    def __init__(
        self,
        memo: StripMemo[T],
        key: Hashable,
        previous: dict[Hashable, Entry[T]],
    ) -> None:
        self._memo = memo
        self._key = key
        self._previous = previous
        self._made: dict[Hashable, Entry[T]] = {}
        #: Results made in this run (the others were reused): for tests and the bench.
        self.made = 0

    def reuse(
        self,
        key: Hashable,
        inputs: object,
        make: Callable[[], T],
        carry: Iterable[Hashable] = (),
    ) -> T:
        """``make()``, or the previous answer's result for ``key`` if made from equal ``inputs``.

        ``inputs`` must hold everything the result depends on besides the run's
        key. On a hit, the previous entries under the ``carry`` keys (the parts
        ``make`` would have made through this run) are kept as well.
        """
        hit = self._previous.get(key)
        if hit is None or hit[0] != inputs:
            hit = (inputs, make())
            self.made += 1
        else:
            for part in carry:
                kept = self._previous.get(part)
                if kept is not None:
                    self._made[part] = kept
        self._made[key] = hit
        return hit[1]

    def strip(self, key: Hashable, buckets: Sequence[Bucket], make: Callable[[], T]) -> T:
        """``make()``, or the previous answer's result for the same ``key`` and buckets."""
        return self.reuse(key, list(buckets), make)

    def close(self) -> None:
        self._memo.keep(self._key, self._made)
