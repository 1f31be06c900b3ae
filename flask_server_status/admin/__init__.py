"""Flask-Admin views of the status data, under the category "Status".

``FlaskStatus(app, admin=admin)`` (or ``init_app(app, admin=admin)``) calls
:func:`add_views`, which adds

* Overview, at ``<admin url>/flask-status/`` (endpoint ``flask_status_overview``):
  overall state, routes failing now, the last minute stored;
* Routes, at ``<admin url>/flask-status/routes/`` (endpoint ``flask_status_routes``),
* Logs, at ``<admin url>/flask-status/logs/`` (endpoint ``flask_status_logs``).

The endpoints are prefixed so that a host's own ``Route`` or ``Log`` view
(whose default endpoint is ``route`` / ``log``) cannot collide with ours.

The admin's own landing page ("Home") belongs to the host; a host that wants
the same summary there passes :class:`StatusIndexView`::

    admin = Admin(app, index_view=StatusIndexView())
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

from ..models import Log, Route
from ..routes import LOGS_ENDPOINT, OVERVIEW_ENDPOINT, ROUTES_ENDPOINT
from .access import StatusAccessMixin, basic_auth_configured, make_basic_auth
from .views import (
    LogView,
    OverviewView,
    RouteView,
    StatusIndexView,
    status_summary,
)

if TYPE_CHECKING:
    from flask import Flask
    from flask_admin import Admin

    from ..state import StatusState

__all__ = [
    "LOGS_ENDPOINT",
    "OVERVIEW_ENDPOINT",
    "ROUTES_ENDPOINT",
    "LogView",
    "OverviewView",
    "RouteView",
    "StatusAccessMixin",
    "StatusIndexView",
    "add_views",
    "basic_auth_configured",
    "make_basic_auth",
    "status_summary",
]

CATEGORY = "Status"

# Admins our views were added to: the same Admin handed over again (one Admin
# for several apps) needs nothing more, as the views read each app's state at
# request time. Weak, so a discarded Admin is not kept alive.
_admins_with_views: weakref.WeakSet[Admin] = weakref.WeakSet()


def add_views(admin: Admin, app: Flask, state: StatusState) -> None:
    """Add the Routes and Logs views to ``admin``.

    Works whether ``admin`` is already bound to ``app`` (views are registered
    at once) or not yet (``admin.init_app(app)`` registers them later).

    :param admin: the host's :class:`flask_admin.Admin`.
    :param app: the app the extension is being set up on.
    :param state: the extension's state for ``app``.
    """
    if admin in _admins_with_views:
        return
    _admins_with_views.add(admin)
    csrf = bool(app.config.get("SECRET_KEY"))
    auth = make_basic_auth()
    admin.add_view(
        OverviewView(
            basic_auth=auth,
            name="Overview",
            category=CATEGORY,
            endpoint=OVERVIEW_ENDPOINT,
            url="flask-status",
        )
    )
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
