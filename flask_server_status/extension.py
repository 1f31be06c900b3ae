"""The :class:`FlaskStatus` extension object and the per-app state it wires up."""

from __future__ import annotations

import logging
import os
import warnings
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING

from flask import Flask, current_app
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.engine import Engine

from . import capture
from .config import BIND_KEY, read_settings
from .state import EXTENSION_KEY, StatusState

if TYPE_CHECKING:
    from flask_admin import Admin

log = logging.getLogger("flask_server_status")


class FlaskStatus:
    """Count every response of a Flask app and publish a status page.

    ::

        status = FlaskStatus(app, admin=admin)

    or, with an application factory::

        status = FlaskStatus()

        def create_app():
            app = Flask(__name__)
            status.init_app(app, admin=admin)
            return app

    :param app: the app to watch; or call :meth:`init_app` later.
    :param routes: URL rules to show, e.g. ``["/"]``; ``None`` shows every
        rule except static files, the extension's own and Flask-Admin's.
    :param url_prefix: where the status page lives (default ``/status``).
    :param admin: a :class:`flask_admin.Admin` to add the Status views to.
    :param db: the :class:`~flask_sqlalchemy.SQLAlchemy` to use; by default
        the app's registered one, else a new one.
    """

    def __init__(
        self,
        app: Flask | None = None,
        routes: Iterable[str] | None = None,
        url_prefix: str = "/status",
        admin: Admin | None = None,
        db: SQLAlchemy | None = None,
    ) -> None:
        self.routes = list(routes) if routes is not None else None
        self.url_prefix = url_prefix
        self.admin = admin
        self.db = db
        self._states: weakref.WeakKeyDictionary[Flask, StatusState] = weakref.WeakKeyDictionary()
        if app is not None:
            self.init_app(app)

    def init_app(
        self,
        app: Flask,
        routes: Iterable[str] | None = None,
        url_prefix: str | None = None,
        admin: Admin | None = None,
        db: SQLAlchemy | None = None,
    ) -> None:
        """Set the extension up on ``app``; arguments override the constructor's.

        :raises RuntimeError: if the extension is already registered on ``app``.
        """
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError(
                "A 'FlaskStatus' instance has already been registered on this Flask app."
                " Import and use that instance instead."
            )
        settings = read_settings(app.config)
        chosen_routes = list(routes) if routes is not None else self.routes
        prefix = _normalise_prefix(url_prefix if url_prefix is not None else self.url_prefix)
        registered_before = app.extensions.get("sqlalchemy") is not None
        database = _resolve_db(app, db or self.db)
        engine = _status_engine(app, database)
        if not registered_before:
            _confine_session_teardown(app, database)

        state = StatusState(app, settings, database, engine, chosen_routes, prefix)
        self._states[app] = state
        app.extensions[EXTENSION_KEY] = self

        try:
            state.store.ensure_schema()
        except Exception as exc:  # the database may come up later
            log.warning("flask-server-status: could not create the status tables yet: %s", exc)

        capture.install(app, state.buffer)
        _register_blueprints(app, state)
        admin = admin or self.admin
        if admin is not None:
            from .admin import add_views

            add_views(admin, app, state)

    # -- public helpers ------------------------------------------------------------

    def state(self, app: Flask | None = None) -> StatusState:
        """The per-app state (the current app's by default)."""
        if app is None:
            app = current_app._get_current_object()  # type: ignore[attr-defined]
        try:
            return self._states[app]
        except KeyError:
            raise RuntimeError(
                "This FlaskStatus is not initialised on this app; call status.init_app(app)."
            ) from None

    def flush(self, app: Flask | None = None) -> int:
        """Write what this process has buffered for the app now.

        :returns: the number of requests written.
        :raises: the database error, after keeping the counts for a later flush.
        """
        return self.state(app).buffer.flush()


def _normalise_prefix(prefix: str) -> str:
    prefix = "/" + prefix.strip().strip("/")
    return prefix if prefix != "/" else ""


def _resolve_db(app: Flask, db: SQLAlchemy | None) -> SQLAlchemy:
    registered = app.extensions.get("sqlalchemy")
    if db is not None:
        if registered is None:
            _default_uri(app)
            db.init_app(app)
        elif registered is not db:
            raise RuntimeError(
                "The app already has another SQLAlchemy instance registered; pass that one"
                " as db= or leave db out."
            )
        return db
    if registered is not None:
        return registered
    _default_uri(app)
    db = SQLAlchemy()
    db.init_app(app)
    return db


def _default_uri(app: Flask) -> None:
    if app.config.get("SQLALCHEMY_DATABASE_URI") or (app.config.get("SQLALCHEMY_BINDS") or {}):
        return
    os.makedirs(app.instance_path, exist_ok=True)
    path = os.path.join(app.instance_path, "flask_status.db")
    app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{path}"
    warnings.warn(
        "SQLALCHEMY_DATABASE_URI is not set; flask-server-status stores its data in"
        f" {path}. Set SQLALCHEMY_DATABASE_URI (or SQLALCHEMY_BINDS['flask_status'])"
        " to choose the database.",
        UserWarning,
        stacklevel=4,
    )


#: Blueprints of ours whose requests use ``db.session`` (API, admin views).
SESSION_BLUEPRINTS = (
    "flask_status",
    "flask_status_api",
    "flask_status_routes",
    "flask_status_logs",
)


def _confine_session_teardown(app: Flask, db: SQLAlchemy) -> None:
    """Remove the session after our own requests only, when the ``db`` is ours.

    Flask-SQLAlchemy removes its session after every app context; with a
    ``db`` the host never uses, that teardown was the largest cost we added to
    a host request (about 5 % of a bare Flask request, by callgrind). Only
    our API and admin views use the session, so its removal runs after their
    requests alone.
    """
    try:
        app.teardown_appcontext_funcs.remove(db._teardown_session)
    except ValueError:  # a Flask-SQLAlchemy that registers it differently: leave it
        return

    def remove_session(exc: BaseException | None) -> None:
        db.session.remove()

    for name in SESSION_BLUEPRINTS:
        app.teardown_request_funcs.setdefault(name, []).append(remove_session)


def _status_engine(app: Flask, db: SQLAlchemy) -> Engine:
    """The engine of the ``flask_status`` bind, aliasing it to the default one if unset.

    The models' metadata names the bind, so the host's ``db.session`` (which
    Flask-Admin uses) finds our tables wherever they are.
    """
    with app.app_context():
        engines = db.engines
        if BIND_KEY not in engines:
            if None not in engines:
                raise RuntimeError(
                    "flask-server-status needs SQLALCHEMY_DATABASE_URI or"
                    f" SQLALCHEMY_BINDS[{BIND_KEY!r}] to be set."
                )
            engines[BIND_KEY] = engines[None]  # type: ignore[index]
        return engines[BIND_KEY]


def _register_blueprints(app: Flask, state: StatusState) -> None:
    from .api import make_blueprint as api_blueprint
    from .cli import status_cli
    from .page import make_blueprint as page_blueprint

    app.register_blueprint(page_blueprint(state), url_prefix=state.url_prefix or None)
    app.cli.add_command(status_cli)
    if state.settings.api_enabled:
        if not state.settings.api_secret:
            raise RuntimeError(
                "API_ENABLED is set but API_SECRET is not: set API_SECRET (or"
                " FLASK_STATUS_API_SECRET) to the Bearer token scripts will send."
            )
        app.register_blueprint(api_blueprint(state), url_prefix="/flask-status")
