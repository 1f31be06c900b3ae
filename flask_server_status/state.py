"""The per-app state of the extension, and :func:`get_state` to reach it.

Every module that serves a request (page, API, admin, CLI) reaches the state
through :func:`get_state`, never through the extension object, so imports run
one way: ``extension`` wires the parts together and nothing imports it back.
"""

from __future__ import annotations

import logging
import os
import weakref
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Protocol

from flask import Flask, current_app
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from . import journal
from .buffer import Buffer, Counts
from .config import Settings
from .journal import InTransaction
from .routes import RouteTableChanged
from .snapshots import SnapshotReader
from .store import Store

log = logging.getLogger("flask_server_status")

#: Where the extension object is kept in ``app.extensions``.
EXTENSION_KEY = "flask-server-status"


class _HasStates(Protocol):
    def state(self, app: Flask | None = None) -> StatusState: ...


class StatusState:
    """Everything the extension keeps for one app.

    Reach it with :func:`get_state` (or ``status.state(app)``).
    """

    def __init__(
        self,
        app: Flask,
        settings: Settings,
        db: SQLAlchemy,
        engine: Engine,
        routes: list[str] | None,
        url_prefix: str,
    ) -> None:
        # Weak, so that an app thrown away (tests make hundreds) can be
        # collected although its buffer is known to the exit hook.
        self._app = weakref.ref(app)
        self.settings = settings
        self.db = db
        self.engine = engine
        self.routes = routes
        self.url_prefix = url_prefix
        self.store = Store(engine, settings)
        #: What the status page shows, read incrementally (:mod:`.snapshots`).
        self.reader = SnapshotReader(engine, settings, routes)
        self.buffer = Buffer(
            self._write,
            settings.flush_interval,
            settings.buffer_max_keys,
            journal=journal.for_app(app, settings, engine),
            exit_timeout=journal.exit_flush_timeout(app, settings),
        )
        #: The clock that pages, feeds and the reader read "now" from. Tests
        #: replace it to stand at a chosen minute (``state.clock = lambda: t``).
        self.clock: Callable[[], datetime] = _utcnow
        _live_states.add(self)

    @property
    def app(self) -> Flask:
        app = self._app()
        if app is None:
            raise RuntimeError("the app of this flask-server-status state is gone")
        return app

    def route_ids(self) -> Mapping[str, int]:
        """Sync the route table with ``app.url_map`` if it changed; ``rule -> id``."""
        return self.store.routes.ids_for(self.app, self.routes)

    def _write(self, counts: Counts, in_transaction: InTransaction | None = None) -> int:
        """The buffer's writer: store ``counts``, return how many requests were stored.

        A route table changed behind our back (a restore) is read again and
        the write retried once. Requests to rules the table cannot hold are
        logged and counted as dropped once the rest is stored.
        """
        try:
            stored = self.store.write(counts, self.route_ids(), in_transaction)
        except (RouteTableChanged, IntegrityError) as exc:
            # IntegrityError: a foreign key, when a row goes between the
            # write's check of the ids and its insert.
            why = exc if isinstance(exc, RouteTableChanged) else type(exc.orig).__name__
            log.warning("flask-server-status: the route table changed (%s); reading it again", why)
            self.store.routes.forget()
            stored = self.store.write(counts, self.route_ids(), in_transaction)
        lost = self.store.routes.count_refused(counts)
        if lost:
            self.buffer.count_dropped(lost)
        return stored


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def get_state(app: Flask | None = None) -> StatusState:
    """The :class:`StatusState` of ``app`` (default: the current app)."""
    if app is None:
        # Werkzeug's documented way to unwrap the proxy, despite the underscore.
        app = current_app._get_current_object()  # type: ignore[attr-defined]  # noqa: SLF001
    extension: _HasStates | None = app.extensions.get(EXTENSION_KEY)
    if extension is None:
        raise RuntimeError(
            "flask-server-status is not initialised on this app; call FlaskStatus(app)"
            " or status.init_app(app) first."
        )
    return extension.state(app)


# States alive in this process, for the fork hook. Weak, as the buffers are.
_live_states: weakref.WeakSet[StatusState] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # A child forked after the app was made (gunicorn --preload) inherits the
    # parent's pooled connections; several processes talking over one socket
    # garble each other's replies. SQLAlchemy's recipe: a fresh pool in the
    # child, leaving the parent's connections open for the parent.
    for state in list(_live_states):
        state.engine.dispose(close=False)
        state.store.after_fork()
        state.reader.after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
