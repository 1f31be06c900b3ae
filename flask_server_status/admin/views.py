"""The Flask-Admin views: Routes (rename, hide, delete) and Logs (read-only).

Both are plain :class:`flask_admin.contrib.sqla.ModelView` subclasses
configured by class attributes; the few overridden hooks route every change
through :mod:`flask_server_status.service`, the same code the configure API
uses, so a rename in the admin has exactly the API's effect.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from flask import flash, g, url_for
from flask_admin.actions import action
from flask_admin.contrib.sqla import ModelView
from flask_admin.contrib.sqla.filters import (
    DateTimeBetweenFilter,
    DateTimeGreaterFilter,
    DateTimeSmallerFilter,
    IntEqualFilter,
)
from flask_admin.form import BaseForm, SecureForm
from markupsafe import Markup

from .. import service
from ..config import FAILURE, NEUTRAL, OUTCOME_NAMES, SUCCESS
from ..forms import RouteForm
from ..models import UNMATCHED_RULE, Log, Route
from ..queries import window_totals
from ..state import get_state
from .access import StatusAccessMixin, make_basic_auth

if TYPE_CHECKING:
    from flask_httpauth import HTTPBasicAuth
    from flask_sqlalchemy import SQLAlchemy
    from sqlalchemy.orm import Session
    from wtforms import Form

log = logging.getLogger("flask_server_status")

ROUTES_ENDPOINT = "flask_status_routes"
LOGS_ENDPOINT = "flask_status_logs"

_TODAY_KEY = "_flask_status_admin_today"


def _dash(value: float | None, unit: str = "") -> str:
    return "—" if value is None else f"{value:.1f}{unit}"


class _StatusModelView(StatusAccessMixin, ModelView):
    """What both views share: access rule, CSRF and the session."""

    def __init__(
        self,
        model: type[Any],
        db: SQLAlchemy,
        *,
        basic_auth: HTTPBasicAuth | None = None,
        csrf: bool = True,
        **kwargs: Any,
    ) -> None:
        """
        :param model: :class:`~flask_server_status.models.Route` or ``Log``.
        :param db: the app's :class:`~flask_sqlalchemy.SQLAlchemy` (not its session).
        :param basic_auth: the Basic-auth gate; a new one by default.
        :param csrf: use Flask-Admin's ``SecureForm`` (CSRF tokens).
        :param kwargs: ``name``, ``category``, ``endpoint``, ``url``… as for ``ModelView``.
        """
        # Set before ModelView.__init__, which builds the form classes from it.
        if csrf:
            self.form_base_class = SecureForm
        self.basic_auth = basic_auth if basic_auth is not None else make_basic_auth()
        super().__init__(model, db, **kwargs)

    def _session(self) -> Session:
        # ModelView is given the SQLAlchemy object (the Flask-Admin 2 way) and
        # the session is looked up per request through it; a subclass handed
        # a bare session (deprecated) still works.
        return getattr(self.session, "session", self.session)  # type: ignore[return-value]


# -- Routes ---------------------------------------------------------------------------


def _requests_today(view: Any, context: Any, model: Route, name: str) -> int:
    bucket = g.get(_TODAY_KEY, {}).get(model.id)
    return bucket.total if bucket is not None else 0


def _uptime_today(view: Any, context: Any, model: Route, name: str) -> str:
    bucket = g.get(_TODAY_KEY, {}).get(model.id)
    uptime = bucket.uptime if bucket is not None else None
    return "no data" if uptime is None else f"{uptime:.2f} %"


def _short_doc(view: Any, context: Any, model: Route, name: str) -> str:
    doc = model.doc or ""
    # A plain str: Jinja escapes it in the list template.
    return doc if len(doc) <= 160 else doc[:159] + "…"


def _hidden(view: Any, context: Any, model: Route, name: str) -> str:
    # Words, not Flask-Admin's icon-only check mark, so screen readers get it too.
    return "hidden" if model.hidden else "shown"


def _normalise_text(value: str | None) -> str:
    # Browsers send textarea lines with CRLF; the docstring has LF.
    return (value or "").replace("\r\n", "\n").replace("\r", "\n").strip()


class RouteView(_StatusModelView):
    """List, search, rename, hide/show and delete the routes of the status page."""

    can_create = False
    can_view_details = False
    can_set_page_size = True

    column_list = ("name", "rule", "doc", "hidden", "requests_today", "uptime_today")
    column_labels = {
        "name": "Name",
        "rule": "Rule",
        "doc": "Description",
        "hidden": "Hidden",
        "requests_today": "Requests today (UTC)",
        "uptime_today": "Uptime today (UTC)",
    }
    column_descriptions = {
        "requests_today": "Every request since 00:00 UTC, neutral (4xx) ones included.",
        "uptime_today": "success / (success + failure) since 00:00 UTC.",
        "hidden": "Hidden routes are not shown on the status page.",
    }
    column_searchable_list = ("name", "rule")
    column_sortable_list = ("name", "rule", "hidden")
    column_default_sort = [("position", False), ("id", False)]
    column_formatters = {
        "requests_today": _requests_today,
        "uptime_today": _uptime_today,
        "doc": _short_doc,
        "hidden": _hidden,
    }

    # -- what the list shows ------------------------------------------------------

    def get_query(self) -> Any:
        return super().get_query().filter(Route.rule != UNMATCHED_RULE)

    def get_count_query(self) -> Any:
        return super().get_count_query().filter(Route.rule != UNMATCHED_RULE)

    def get_one(self, id: Any) -> Route | None:
        route = super().get_one(id)
        if route is None or route.rule == UNMATCHED_RULE:
            return None
        return route

    def get_list(
        self,
        page: int | None,
        sort_column: Any,
        sort_desc: bool,
        search: str | None,
        filters: Any,
        execute: bool = True,
        page_size: int | None = None,
    ) -> tuple[int | None, Any]:
        state = get_state()
        try:
            # Rules added since the last flush get their row now, so a fresh
            # app lists its routes before any traffic was written.
            state.route_ids()
        except Exception as exc:  # a database hiccup must not hide the list
            log.warning("flask-server-status: could not sync routes for the admin: %s", exc)
        count, data = super().get_list(
            page, sort_column, sort_desc, search, filters, execute=execute, page_size=page_size
        )
        if execute:
            midnight = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
            ids = [route.id for route in data]
            # One read of the day roll-ups for the whole page, not one per row.
            g.setdefault(_TODAY_KEY, {}).update(
                window_totals(state, since=midnight, route_ids=ids) if ids else {}
            )
        return count, data

    # -- the edit form: the shared RouteForm ------------------------------------

    def scaffold_form(self) -> type[Form]:
        # RouteForm carries the rules and messages the API validates with; the
        # admin's base class adds Flask-Admin's translations and, with a
        # SECRET_KEY, the CSRF token.
        base: type[BaseForm] = self.form_base_class
        return type("RouteEditForm", (base, RouteForm), {})

    def update_model(self, form: Form, model: Route) -> bool:
        changes: dict[str, Any] = {}
        name = _normalise_text(form.name.data)
        doc = _normalise_text(form.doc.data)
        hidden = bool(form.hidden.data)
        # Only what the operator changed: saving an untouched name must not pin
        # it (custom_name) against later docstring edits.
        if name != _normalise_text(model.name):
            changes["name"] = name
        if doc != _normalise_text(model.doc):
            changes["doc"] = doc
        if hidden != bool(model.hidden):
            changes["hidden"] = hidden
        if not changes:
            return True
        session = self._session()
        try:
            self.on_model_change(form, model, False)
            service.update_route(session, model.rule, changes)
        except service.RouteError as exc:
            session.rollback()
            shown = False
            for field_name, messages in exc.errors.items():
                field = getattr(form, field_name, None)
                if field is not None:
                    field.errors = [*field.errors, *messages]
                    shown = True
            if not shown:
                flash(exc.message, "error")
            return False
        except Exception as exc:
            session.rollback()
            if not self.handle_view_exception(exc):
                flash(f"Failed to update the route. {exc}", "error")
                log.exception("flask-server-status: admin failed to update a route")
            return False
        self.after_model_change(form, model, False)
        return True

    def delete_model(self, model: Route) -> bool:
        """Hide the route and purge its history (the API's DELETE).

        The row itself stays: deleting it would bring the route back, with a
        new id, on the next sync with the app's URL map.
        """
        session = self._session()
        try:
            self.on_model_delete(model)
            service.delete_route(session, model.rule)
        except service.RouteError as exc:
            session.rollback()
            flash(exc.message, "error")
            return False
        except Exception as exc:
            session.rollback()
            if not self.handle_view_exception(exc):
                flash(f"Failed to delete the route. {exc}", "error")
                log.exception("flask-server-status: admin failed to delete a route")
            return False
        self.after_model_delete(model)
        return True

    def after_model_delete(self, model: Route) -> None:
        flash(
            f"{model.name or model.rule}: history deleted and route hidden;"
            " un-hide it here to show it again.",
            "info",
        )

    # -- bulk actions --------------------------------------------------------------

    def is_action_allowed(self, name: str) -> bool:
        if name in ("hide", "show") and not self.can_edit:
            return False
        return super().is_action_allowed(name)

    def _rules_for(self, ids: list[str] | tuple[str, ...]) -> list[str]:
        numbers = [int(i) for i in ids if str(i).isdigit()]
        if not numbers:
            return []
        rows = self._session().execute(
            sa.select(Route.rule).where(Route.id.in_(numbers), Route.rule != UNMATCHED_RULE)
        )
        return [rule for (rule,) in rows]

    def _set_hidden(self, ids: list[str] | tuple[str, ...], hidden: bool) -> None:
        # Actions are not covered by can_edit; check it here.
        if not self.can_edit or not self.is_accessible():
            flash("You are not allowed to change routes.", "error")
            return
        session = self._session()
        try:
            changed = service.set_hidden(session, self._rules_for(ids), hidden)
        except Exception as exc:
            session.rollback()
            if not self.handle_view_exception(exc):
                raise
            flash(f"Failed to change the routes. {exc}", "error")
            return
        verb = "hidden" if hidden else "shown"
        flash(f"{changed} route{'s' if changed != 1 else ''} {verb}.", "success")

    @action("hide", "Hide", "Hide the selected routes from the status page?")
    def action_hide(self, ids: list[str]) -> None:
        self._set_hidden(ids, True)

    @action("show", "Show", "Show the selected routes on the status page?")
    def action_show(self, ids: list[str]) -> None:
        self._set_hidden(ids, False)

    @action(
        "delete",
        "Delete",
        "Delete the history of the selected routes and hide them from the status page?",
    )
    def action_delete(self, ids: tuple[str, ...]) -> None:
        # Actions ignore can_delete; check it here.
        if not self.can_delete or not self.is_accessible():
            flash("You are not allowed to delete routes.", "error")
            return
        session = self._session()
        deleted = 0
        for rule in self._rules_for(ids):
            try:
                service.delete_route(session, rule)
            except service.RouteError as exc:
                flash(exc.message, "error")
            else:
                deleted += 1
        flash(
            f"{deleted} route{'s' if deleted != 1 else ''}: history deleted and hidden.",
            "success",
        )


# -- Logs -------------------------------------------------------------------------------


class _UTCMixin:
    """Flask-Admin's date-time filters parse naive values; ours are UTC minutes."""

    def clean(self, value: str) -> Any:
        cleaned = super().clean(value)  # type: ignore[misc]
        if isinstance(cleaned, list):
            return [moment.replace(tzinfo=timezone.utc) for moment in cleaned]
        return cleaned.replace(tzinfo=timezone.utc)


class UTCDateTimeBetweenFilter(_UTCMixin, DateTimeBetweenFilter):
    pass


class UTCDateTimeGreaterFilter(_UTCMixin, DateTimeGreaterFilter):
    pass


class UTCDateTimeSmallerFilter(_UTCMixin, DateTimeSmallerFilter):
    pass


class _RouteOptions:
    """The route filter's choices, read from the database each time they are shown.

    Flask-Admin evaluates a callable ``options`` once, when the view is built
    (outside any app context, before routes exist); an iterable is only
    walked when the list page renders, so routes added later appear.
    """

    def __bool__(self) -> bool:
        return True

    def __iter__(self) -> Iterator[tuple[int, str]]:
        session = get_state().db.session
        rows = session.execute(
            sa.select(Route.id, Route.name, Route.rule).order_by(Route.position, Route.id)
        )
        return iter([(id_, f"{name or rule} ({rule})") for id_, name, rule in rows])


def _log_route(view: Any, context: Any, model: Log, name: str) -> Markup | str:
    route = model.route
    if route is None:
        return ""
    label = route.name or route.rule
    if route.rule == UNMATCHED_RULE:
        return label
    url = url_for(f"{ROUTES_ENDPOINT}.edit_view", id=route.id)
    return Markup('<a href="{}" title="{}">{}</a>').format(url, route.rule, label)


def _log_minute(view: Any, context: Any, model: Log, name: str) -> str:
    return model.minute.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M")


def _log_outcome(view: Any, context: Any, model: Log, name: str) -> str:
    return model.outcome_name


def _log_mean(view: Any, context: Any, model: Log, name: str) -> str:
    return _dash(model.latency_mean)


def _log_p95(view: Any, context: Any, model: Log, name: str) -> str:
    return _dash(model.latency_p95)


class LogView(_StatusModelView):
    """Read-only list of the minute buckets, newest first."""

    can_create = False
    can_edit = False
    can_delete = False
    can_view_details = False
    can_set_page_size = True
    column_display_actions = False
    action_disallowed_list = ["delete"]
    named_filter_urls = True
    page_size = 50

    column_list = ("route", "minute", "status", "outcome", "count", "latency_mean", "latency_p95")
    column_labels = {
        "route": "Route",
        "minute": "Minute (UTC)",
        "status": "Status code",
        "outcome": "Outcome",
        "count": "Requests",
        "latency_mean": "Mean latency (ms)",
        "latency_p95": "p95 latency (ms)",
    }
    column_descriptions = {
        "latency_p95": "Estimated from a fixed-bucket histogram.",
        "outcome": "success: 1xx-3xx; failure: 5xx and 404; neutral: other 4xx.",
    }
    column_sortable_list = (("route", "route.name"), "minute", "status", "outcome", "count")
    column_default_sort = [("minute", True), ("id", True)]
    column_formatters = {
        "route": _log_route,
        "minute": _log_minute,
        "outcome": _log_outcome,
        "latency_mean": _log_mean,
        "latency_p95": _log_p95,
    }
    column_filters = (
        IntEqualFilter(Log.route_id, "Route", options=_RouteOptions()),
        IntEqualFilter(Log.status, "Status code"),
        IntEqualFilter(
            Log.outcome,
            "Outcome",
            options=tuple((code, OUTCOME_NAMES[code]) for code in (SUCCESS, FAILURE, NEUTRAL)),
        ),
        UTCDateTimeBetweenFilter(Log.minute, "Minute (UTC)"),
        UTCDateTimeGreaterFilter(Log.minute, "Minute (UTC)"),
        UTCDateTimeSmallerFilter(Log.minute, "Minute (UTC)"),
    )
