"""Counts not yet written, kept on local disk and written once by a later process.

Every second the flusher drains the requests of that second into the
in-memory counters (:mod:`.buffer`) and, in the same step, appends them to
this process's journal: one JSON line per drain in the *active segment*, a
file in the journal folder. A flush closes the active segment (a new one
takes the drains that follow) and writes the counts of every segment closed
so far; once they are committed, the segments are deleted. So on disk there
is always exactly what this process counted and the database does not have
yet, give or take the second not drained.

When the process ends without writing them (the database was down when it
stopped, it was killed with ``SIGKILL`` or by the OOM killer), the segments
stay. The next process on the host that uses the same folder writes them:
every flush, and the flusher's first round, look for segments whose owner is
gone.

Writing a segment exactly once, whatever happens:

* **Who owns a segment.** A process holds an ``flock`` on its own lock file
  for as long as it lives; the kernel releases it when the process dies,
  ``SIGKILL`` included. A segment whose owner's lock can be taken is an
  orphan.
* **Claiming it.** A process claims an orphan by renaming it to a name under
  its own lock (``os.rename`` is atomic: of two processes that try at once,
  one gets ``FileNotFoundError``). A claimer that dies halfway leaves the
  segment under a lock nobody holds, to be claimed again.
* **Writing it.** The segment's id goes into ``flask_status_journal`` (unique
  per host and segment) in the same transaction as its counts. A replay
  after a crash between that commit and the file's deletion finds the id and
  only deletes the file; the unique key also settles any race the locks do
  not. Normal flushes record their segments' ids the same way.

What is still lost: the requests of the last second or so that were not
drained yet when the process was killed, and the journal itself if the disk
is lost (appends reach the page cache, which survives the process but not a
power cut; the segments are synced to disk when the process stops).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from .config import HISTOGRAM_SIZE
from .models import JOURNAL_TABLE

if TYPE_CHECKING:
    from flask import Flask

    from .config import Settings

# The buffer's shapes (see :mod:`.buffer`, which imports this module).
Key = tuple[str, int, int]
Slot = list[float]
Counts = dict[Key, Slot]

log = logging.getLogger("flask_server_status")

#: Called inside the transaction that writes a batch of counts.
InTransaction = Callable[[Connection], None]
#: Writes counts, running the given callable inside its transaction; returns
#: how many requests it stored.
Writer = Callable[["Counts", "InTransaction | None"], "int | None"]

#: Config keys of the journal and the exit flush, read here only.
DEFAULT_EXIT_FLUSH_TIMEOUT = 5.0
#: Ids of written segments are kept this long; a segment older than that is
#: not expected (it is replayed by the next process on the host).
MARKER_RETENTION = timedelta(days=30)

_SUFFIX = ".seg"
_LOCK_SUFFIX = ".lock"


class _AlreadyWritten(Exception):
    """A replayed segment whose id is already in the database."""


def for_app(app: Flask, settings: Settings, engine: Engine) -> Journal | None:
    """The journal of ``app``'s counts, or None when ``FLASK_STATUS_JOURNAL`` is off.

    The folder is ``FLASK_STATUS_JOURNAL_DIR`` (default: the app's instance
    folder), plus a sub-folder per app name and database, so that two apps
    sharing an instance folder never write each other's counts into the
    wrong database.
    """
    if not settings.journal:
        return None
    base = settings.journal_dir or app.instance_path
    target = f"{app.name}\n{engine.url.render_as_string(hide_password=True)}"
    digest = hashlib.sha256(target.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return Journal(os.path.join(str(base), "flask-status-journal", digest), engine)


def exit_flush_timeout(app: Flask, settings: Settings) -> float:
    """Seconds the exit flush may take (``FLASK_STATUS_EXIT_FLUSH_TIMEOUT``, default 5)."""
    return settings.exit_flush_timeout


def _insert(engine_or_conn: Connection, ignore: bool) -> sa.Insert:
    table = JOURNAL_TABLE
    if not ignore:
        return sa.insert(table)
    dialect = engine_or_conn.dialect.name
    if dialect in ("mysql", "mariadb"):
        from sqlalchemy.dialects.mysql import insert as mysql_insert

        return mysql_insert(table).prefix_with("IGNORE")
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing(index_elements=["host", "segment"])
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).on_conflict_do_nothing(index_elements=["host", "segment"])


def encode(counts: Mapping[Key, Slot]) -> bytes:
    """One journal line: ``[[rule, minute, status, count, sum, max, h0..], ...]``."""
    return (
        json.dumps(
            [[key[0], key[1], key[2], *slot] for key, slot in counts.items()],
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode("utf-8", "surrogatepass")
        + b"\n"
    )


def decode(data: bytes, merge: Callable[[Counts, Key, Slot], None]) -> tuple[Counts, int]:
    """The counts of a segment's lines, and how many lines could not be read.

    A line cut short (the process was killed in the middle of an append) is
    skipped: its counts are lost, none are invented.
    """
    counts: Counts = {}
    bad = 0
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            entries = json.loads(line.decode("utf-8", "surrogatepass"))
            parsed = [_entry(entry) for entry in entries]
        except (ValueError, TypeError, IndexError):
            bad += 1
            continue
        for key, slot in parsed:
            merge(counts, key, slot)
    return counts, bad


def _entry(entry: list[Any]) -> tuple[Key, Slot]:
    if len(entry) != 6 + HISTOGRAM_SIZE:
        raise ValueError("not a journal entry")
    rule, minute, status, count, total, longest, *histogram = entry
    key = (str(rule), int(minute), int(status))
    slot: Slot = [int(count), float(total), float(longest)]
    slot.extend(int(h) for h in histogram)
    return key, slot


class Journal:
    """One process's journal in ``directory`` (see the module's docstring).

    Every method but :meth:`replay` is called with the buffer's lock held;
    :meth:`replay` runs in the flush thread under the buffer's flush lock.
    Nothing touches the disk until the first append or replay, so a process
    that never counts (a gunicorn master with ``--preload``) leaves nothing.
    """

    def __init__(
        self, directory: str, engine: Engine | None = None, host: str | None = None
    ) -> None:
        self.directory = directory
        #: For the journal's own bookkeeping queries (counts go through the writer).
        self.engine = engine
        self.host = host or socket.gethostname()
        # The drain (append) and the flush thread (replay) may both be first
        # to need our lock file.
        self._own_lock = threading.Lock()
        self._reset()
        self._broken = False
        self._markers_pruned = False

    def _reset(self) -> None:
        self._token: str | None = None
        self._lock_fd: int | None = None
        self._fd: int | None = None
        self._active: str | None = None
        self._seq = 0
        #: Closed segments of ours whose counts are not committed yet.
        self._pending: list[str] = []
        #: Orphans we claimed and have not written yet.
        self._claimed: set[str] = set()

    # -- file names -------------------------------------------------------------

    def _path(self, owner: str, segment: str) -> str:
        return os.path.join(self.directory, f"{owner}~{segment}{_SUFFIX}")

    def _own(self) -> str:
        """Our token, taking our lock first: no segment of ours exists unlocked."""
        with self._own_lock:
            return self._take_lock()

    def _take_lock(self) -> str:
        while self._token is None:
            os.makedirs(self.directory, exist_ok=True)
            token = f"{os.getpid()}-{secrets.token_hex(4)}"
            path = os.path.join(self.directory, token + _LOCK_SUFFIX)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # A sweeper may have taken and removed the file between our open
            # and our flock; a lock on a removed file protects nothing.
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self._lock_fd, self._token = fd, token
            else:
                os.close(fd)
        return self._token

    def _failed(self, what: str, exc: OSError) -> None:
        if not self._broken:
            log.error(
                "flask-server-status: the journal in %s cannot %s (%s); counts are kept"
                " in memory only until this is fixed",
                self.directory,
                what,
                exc,
            )
        self._broken = True

    # -- the drain and the flush (buffer lock held) -------------------------------

    def append(self, counts: Mapping[Key, Slot]) -> None:
        """Add a drain's counts to the active segment (one ``write``, no Python buffer)."""
        if not counts:
            return
        try:
            if self._fd is None:
                token = self._own()
                self._seq += 1
                segment = f"{token}.{self._seq}"
                self._fd = os.open(
                    self._path(token, segment),
                    os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC,
                    0o600,
                )
                self._active = segment
            os.write(self._fd, encode(counts))
            self._broken = False
        except OSError as exc:
            self._failed("be written", exc)

    def rotate(self) -> list[str]:
        """Close the active segment; return every segment whose counts are to be written."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
            if self._active is not None:
                self._pending.append(self._active)
            self._active = None
        return list(self._pending)

    def committed(self, segments: Iterable[str]) -> None:
        """Forget segments whose counts the database has now."""
        done = set(segments)
        self._pending = [s for s in self._pending if s not in done]
        for segment in done:
            self._unlink(segment)

    def _unlink(self, segment: str) -> None:
        if self._token is None:
            return
        try:
            os.unlink(self._path(self._token, segment))
        except FileNotFoundError:
            pass
        except OSError as exc:
            self._failed("delete written segments", exc)

    def marker(self, segments: list[str]) -> InTransaction | None:
        """What a flush runs in its transaction: record ``segments`` as written.

        A normal flush's segments are new, so conflicts are ignored: a retry
        after a commit whose answer was lost must not fail forever.
        """
        if not segments:
            return None
        rows = [{"host": self.host, "segment": s, "written_at": _now()} for s in segments]

        def mark(conn: Connection) -> None:
            conn.execute(_insert(conn, ignore=True), rows)

        return mark

    def discard(self) -> None:
        """Delete what is journaled: the caller throws the counts away."""
        for segment in self.rotate():
            self._unlink(segment)
        self._pending = []

    def close(self, keep_lock: bool = False) -> None:
        """Sync and close the files; release the lock unless ``keep_lock``.

        ``keep_lock``: a flush of ours may still be running (a hung database),
        so others must not claim our segments while this process lives.
        """
        self.rotate()
        if self._pending and self._token is not None:
            for segment in self._pending:
                with contextlib.suppress(OSError):
                    fd = os.open(self._path(self._token, segment), os.O_RDONLY)
                    try:
                        os.fsync(fd)
                    finally:
                        os.close(fd)
        if keep_lock:
            return
        if self._lock_fd is not None and self._token is not None:
            if not self._pending and not self._claimed:
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(self.directory, self._token + _LOCK_SUFFIX))
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
        self._reset()

    def after_fork(self) -> None:
        """In a forked child: drop the parent's files without touching its lock.

        ``close`` on an inherited descriptor leaves the ``flock`` to the
        parent, which still holds it through its own descriptor.
        """
        for fd in (self._fd, self._lock_fd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._own_lock = threading.Lock()
        self._reset()

    def pending_segments(self) -> int:
        """Segments of ours on disk whose counts are not committed yet."""
        return len(self._pending) + (self._active is not None)

    # -- replaying orphans (flush thread) ------------------------------------------

    def orphans(self) -> list[tuple[str, str]]:
        """(owner, segment) of segments on disk that are not ours."""
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        except OSError as exc:
            self._failed("be listed", exc)
            return []
        out = []
        locks = set()
        for name in names:
            if name.endswith(_LOCK_SUFFIX):
                locks.add(name[: -len(_LOCK_SUFFIX)])
                continue
            if not name.endswith(_SUFFIX) or "~" not in name:
                continue
            owner, segment = name[: -len(_SUFFIX)].split("~", 1)
            if owner == self._token and segment not in self._claimed:
                continue  # one of our own, not written yet
            out.append((owner, segment))
        self._sweep(locks - {owner for owner, _ in out} - {self._token})
        return out

    def _sweep(self, owners: Iterable[str | None]) -> None:
        """Remove the lock files of processes that are gone and left no segment."""
        for owner in owners:
            if owner is None:
                continue
            path = os.path.join(self.directory, owner + _LOCK_SUFFIX)
            try:
                fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue  # alive
            with contextlib.suppress(OSError):
                os.unlink(path)
            os.close(fd)

    def replay(self, write: Writer, merge: Callable[[Counts, Key, Slot], None]) -> int:
        """Write the segments of processes that are gone; return requests written.

        Raises what ``write`` raised (the database is down): the claimed
        segments stay ours and are retried by our next flush.
        """
        found = self.orphans()
        if not found:
            return 0
        written = 0
        for owner in sorted({owner for owner, _ in found}):
            if owner != self._token:
                self._claim_from(owner, [s for o, s in found if o == owner])
        for segment in sorted(self._claimed):
            written += self._replay_one(segment, write, merge)
        return written

    def _claim_from(self, owner: str, segments: list[str]) -> None:
        lock_path = os.path.join(self.directory, owner + _LOCK_SUFFIX)
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            fd = None  # its last claimer removed it: nobody holds these
        except OSError as exc:
            self._failed("be read", exc)
            return
        try:
            if fd is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as exc:
                    if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                        return  # alive: its segments are its own
                    raise
            try:
                token = self._own()
            except OSError as exc:
                self._failed("be locked", exc)
                return
            for segment in segments:
                try:
                    os.rename(self._path(owner, segment), self._path(token, segment))
                except FileNotFoundError:
                    continue  # another process claimed it first
                self._claimed.add(segment)
            if fd is not None:
                # Every segment of the owner is claimed: its lock file goes.
                with contextlib.suppress(OSError):
                    os.unlink(lock_path)
        finally:
            if fd is not None:
                os.close(fd)

    def _replay_one(
        self, segment: str, write: Writer, merge: Callable[[Counts, Key, Slot], None]
    ) -> int:
        assert self._token is not None
        path = self._path(self._token, segment)
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            self._claimed.discard(segment)
            return 0
        counts, bad = decode(data, merge)
        if bad:
            log.warning(
                "flask-server-status: journal segment %s had %d unreadable line(s)"
                " (cut short when its process was killed); the rest is written",
                segment,
                bad,
            )
        host = self.host

        def claim(conn: Connection) -> None:
            table = JOURNAL_TABLE
            seen = conn.execute(
                sa.select(table.c.id).where(table.c.host == host, table.c.segment == segment)
            ).first()
            if seen is not None:
                raise _AlreadyWritten(segment)
            conn.execute(
                _insert(conn, ignore=False),
                [{"host": host, "segment": segment, "written_at": _now()}],
            )

        try:
            stored = write(counts, claim) if counts else 0
        except _AlreadyWritten:
            stored = 0
            log.info("flask-server-status: journal segment %s was written before", segment)
        except sa.exc.IntegrityError:
            if not self._is_marked(segment):
                raise
            stored = 0  # a process replaying it at the same moment won
        else:
            log.warning(
                "flask-server-status: wrote %d requests from the journal of a process"
                " that ended without writing them (segment %s)",
                stored or 0,
                segment,
            )
        self._claimed.discard(segment)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        self._prune_markers()
        return int(stored or 0)

    def _is_marked(self, segment: str) -> bool:
        if self.engine is None:
            return False
        table = JOURNAL_TABLE
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(table.c.id).where(table.c.host == self.host, table.c.segment == segment)
            ).first()
        return row is not None

    def _prune_markers(self) -> None:
        """Once per process: forget the ids of segments written long ago."""
        if self._markers_pruned or self.engine is None:
            return
        self._markers_pruned = True
        cutoff = _now() - MARKER_RETENTION
        try:
            with self.engine.begin() as conn:
                conn.execute(sa.delete(JOURNAL_TABLE).where(JOURNAL_TABLE.c.written_at < cutoff))
        except sa.exc.SQLAlchemyError as exc:
            log.warning("flask-server-status: pruning old journal ids failed: %s", exc)


def _now() -> datetime:
    return datetime.now(timezone.utc)
