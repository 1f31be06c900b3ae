"""The :class:`FlaskStatus` extension object and the per-app state it wires up."""

from __future__ import annotations

import logging
import os
import warnings
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING

from flask import Flask, current_app, has_app_context
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.engine import Engine

from . import capture, shutdown
from .config import ConfigError, Settings, read_settings
from .routes import OWN_BLUEPRINTS
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
        # Everything is checked before anything is changed, so that a refused
        # configuration leaves the app as it was and can be fixed and retried.
        settings = read_settings(app.config)
        chosen_routes = _check_routes(routes if routes is not None else self.routes)
        prefix = _normalise_prefix(url_prefix if url_prefix is not None else self.url_prefix)
        admin = admin or self.admin
        db = db or self.db
        _check_startup(app, settings, prefix, admin, db)

        registered_before = app.extensions.get("sqlalchemy") is not None
        database = _resolve_db(app, db)
        engine = _status_engine(app, database, settings)
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
        shutdown.install(state)
        _register_blueprints(app, state)
        if admin is not None:
            from .admin import add_views

            add_views(admin, app, state)

    # -- public helpers ------------------------------------------------------------

    def state(self, app: Flask | None = None) -> StatusState:
        """The per-app state of ``app``.

        Without ``app``: the current app's inside an app context; outside one,
        the one app this extension was initialised on.
        """
        if app is None:
            app = self._default_app()
        try:
            return self._states[app]
        except KeyError:
            raise RuntimeError(
                "This FlaskStatus is not initialised on this app; call status.init_app(app)."
            ) from None

    def _default_app(self) -> Flask:
        if has_app_context():
            # Werkzeug's documented way to unwrap the proxy, despite the underscore.
            app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]  # noqa: SLF001
            return app
        apps = list(self._states.keys())
        if len(apps) == 1:
            return apps[0]
        if not apps:
            raise RuntimeError("This FlaskStatus is not initialised on any app yet.")
        raise RuntimeError(
            f"This FlaskStatus is initialised on {len(apps)} apps and no app context is"
            " active: name the app, e.g. status.flush(app)."
        )

    def flush(self, app: Flask | None = None) -> int:
        """Write what this process has buffered for the app now.

        Inside an app context it flushes the current app; outside one, the one
        app this extension was initialised on (with several, pass ``app``).

        :returns: the number of requests written.
        :raises: the database error, after keeping the counts for a later flush.
        """
        return self.state(app).buffer.flush()


def _normalise_prefix(prefix: str) -> str:
    if not isinstance(prefix, str):
        raise ConfigError(f"url_prefix must be a string such as '/status'; got {prefix!r}")
    prefix = "/" + prefix.strip().strip("/")
    return prefix if prefix != "/" else ""


def _check_routes(routes: Iterable[str] | None) -> list[str] | None:
    if routes is None:
        return None
    if isinstance(routes, str):
        raise ConfigError(f"routes must be a list of URL rules such as ['/']; got {routes!r}")
    chosen = list(routes)
    bad = [rule for rule in chosen if not isinstance(rule, str) or not rule.startswith("/")]
    if bad:
        raise ConfigError(f"routes must be URL rules starting with '/'; got {bad!r}")
    return chosen


#: Where the configure API lives; fixed by the original project's clients.
API_PREFIX = "/flask-status"


def _check_startup(
    app: Flask, settings: Settings, prefix: str, admin: Admin | None, db: SQLAlchemy | None
) -> None:
    """Refuse, before anything changes, what would fail later or silently.

    :raises ConfigError: with what to change.
    """
    if admin is not None and not app.config.get("SECRET_KEY"):
        raise ConfigError(
            "The Status admin views need app.config['SECRET_KEY']: their forms carry CSRF"
            " tokens signed with it. Set SECRET_KEY, or leave admin= out."
        )
    registered = app.extensions.get("sqlalchemy")
    if db is not None and registered is not None and registered is not db:
        raise ConfigError(
            "The app already has another SQLAlchemy instance registered; pass that one"
            " as db= or leave db out."
        )
    ours = [prefix or "/"]
    if settings.api_enabled:
        ours.append(API_PREFIX)
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        for mine in ours:
            under = mine.rstrip("/") + "/"
            if rule.rule == mine or (mine != "/" and rule.rule.startswith(under)):
                raise ConfigError(
                    f"The app's route {rule.rule!r} ({rule.endpoint}) lies where"
                    f" flask-server-status serves {mine!r}: one would shadow the other."
                    " Choose another url_prefix= for the status page, or move that route."
                )


def _resolve_db(app: Flask, db: SQLAlchemy | None) -> SQLAlchemy:
    registered: SQLAlchemy | None = app.extensions.get("sqlalchemy")
    if db is not None:
        if registered is None:
            _default_uri(app)
            db.init_app(app)
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


def _confine_session_teardown(app: Flask, db: SQLAlchemy) -> None:
    """Remove the session after our own requests only, when the ``db`` is ours.

    Flask-SQLAlchemy removes its session after every app context; with a
    ``db`` the host never uses, that teardown was the largest cost we added to
    a host request (about 5 % of a bare Flask request, by callgrind). Only
    our API and admin views use the session, so its removal runs after their
    requests alone.
    """
    try:
        # Flask-SQLAlchemy registers it under this name and offers no public handle.
        app.teardown_appcontext_funcs.remove(db._teardown_session)  # noqa: SLF001
    except ValueError:  # a Flask-SQLAlchemy that registers it differently: leave it
        return

    def remove_session(exc: BaseException | None) -> None:
        db.session.remove()

    for name in OWN_BLUEPRINTS:
        app.teardown_request_funcs.setdefault(name, []).append(remove_session)


def _status_engine(app: Flask, db: SQLAlchemy, settings: Settings) -> Engine:
    """Our engine for the ``flask_status`` bind, with every wait bounded.

    The models' metadata names the bind, so the host's ``db.session`` (which
    Flask-Admin uses) finds our tables wherever they are. The host's own
    engine is never changed (see :mod:`.database`).
    """
    from .database import status_engine

    return status_engine(app, db, settings)


def _register_blueprints(app: Flask, state: StatusState) -> None:
    from .api import make_blueprint as api_blueprint
    from .cli import status_cli
    from .page import make_blueprint as page_blueprint

    app.register_blueprint(page_blueprint(state), url_prefix=state.url_prefix or None)
    app.cli.add_command(status_cli)
    if state.settings.api_enabled:
        app.register_blueprint(api_blueprint(state), url_prefix=API_PREFIX)
