"""Flask-Admin views of the status data, under the category "Status".

``FlaskStatus(app, admin=admin)`` (or ``init_app(app, admin=admin)``) calls
:func:`add_views`, which adds

* Routes, at ``<admin url>/flask-status/routes/`` (endpoint ``flask_status_routes``),
* Logs, at ``<admin url>/flask-status/logs/`` (endpoint ``flask_status_logs``).

The endpoints are prefixed so that a host's own ``Route`` or ``Log`` view
(whose default endpoint is ``route`` / ``log``) cannot collide with ours.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..models import Log, Route
from .access import StatusAccessMixin, basic_auth_configured, make_basic_auth
from .views import LOGS_ENDPOINT, ROUTES_ENDPOINT, LogView, RouteView

if TYPE_CHECKING:
    from flask import Flask
    from flask_admin import Admin

    from ..state import StatusState

__all__ = [
    "LOGS_ENDPOINT",
    "ROUTES_ENDPOINT",
    "LogView",
    "RouteView",
    "StatusAccessMixin",
    "add_views",
    "basic_auth_configured",
    "make_basic_auth",
]

CATEGORY = "Status"


def add_views(admin: Admin, app: Flask, state: StatusState) -> None:
    """Add the Routes and Logs views to ``admin``.

    Works whether ``admin`` is already bound to ``app`` (views are registered
    at once) or not yet (``admin.init_app(app)`` registers them later).

    :param admin: the host's :class:`flask_admin.Admin`.
    :param app: the app the extension is being set up on.
    :param state: the extension's state for ``app``.
    """
    present = {getattr(view, "endpoint", None) for view in getattr(admin, "_views", [])}
    if ROUTES_ENDPOINT in present:
        # The same Admin handed over again (several apps): the views already
        # read each app's state at request time.
        return
    csrf = bool(app.config.get("SECRET_KEY"))
    auth = make_basic_auth()
    admin.add_view(
        RouteView(
            Route,
            state.db,
            basic_auth=auth,
            csrf=csrf,
            name="Routes",
            category=CATEGORY,
            endpoint=ROUTES_ENDPOINT,
            url="flask-status/routes",
        )
    )
    admin.add_view(
        LogView(
            Log,
            state.db,
            basic_auth=auth,
            csrf=csrf,
            name="Logs",
            category=CATEGORY,
            endpoint=LOGS_ENDPOINT,
            url="flask-status/logs",
        )
    )
