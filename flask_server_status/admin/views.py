"""The Flask-Admin views: Routes (rename, hide, delete), Logs (read-only), Overview.

Routes and Logs are plain :class:`flask_admin.contrib.sqla.ModelView`
subclasses configured by class attributes; the few overridden hooks route
every change through :mod:`flask_server_status.service`, the same code the
configure API uses, so a rename in the admin has exactly the API's effect.

Every view of ours answers a database outage with a 503 page and one log
line (never a 500 with a traceback per request), and carries the admin's
security headers (:func:`~flask_server_status.headers.admin_headers`); both
are registered on the view's own blueprint, so the host's admin pages are
left as the host made them.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from flask import Blueprint, flash, g, has_app_context, request, url_for
from flask_admin import AdminIndexView, BaseView, expose
from flask_admin.actions import action
from flask_admin.contrib.sqla import ModelView
from flask_admin.contrib.sqla.filters import (
    DateTimeBetweenFilter,
    DateTimeGreaterFilter,
    DateTimeSmallerFilter,
    IntEqualFilter,
)
from flask_admin.form import BaseForm, SecureForm
from flask_admin.model.template import DeleteRowAction, TemplateLinkRowAction
from markupsafe import Markup
from sqlalchemy.exc import SQLAlchemyError

from .. import format, i18n, queries, service
from ..config import FAILURE, NEUTRAL, OUTCOME_NAMES, SUCCESS
from ..forms import RouteForm
from ..headers import admin_headers
from ..models import UNMATCHED_RULE, Log, Route
from ..page.render import outcome_help
from ..queries import window_totals
from ..routes import ROUTES_ENDPOINT
from ..state import get_state
from .access import StatusAccessMixin, make_basic_auth

if TYPE_CHECKING:
    from flask_admin import Admin
    from flask_admin.model.template import BaseListRowAction
    from flask_httpauth import HTTPBasicAuth
    from flask_sqlalchemy import SQLAlchemy
    from sqlalchemy.orm import Session
    from wtforms import Form

    from ..state import StatusState

log = logging.getLogger("flask_server_status")


#: What the row's Delete button asks before it purges a route's history.
DELETE_CONFIRMATION = (
    "Delete the history of {name} and hide it from the status page?"
    " Its minute, hour and day counts are purged for good; the route stays"
    " listed here, hidden, and showing it again starts from zero."
)

_TODAY_KEY = "_flask_status_admin_today"


#: The last ``?page=`` (counted from 0) the lists accept: far past any real
#: table, far below an OFFSET a database driver refuses to bind.
MAX_PAGE = 1_000_000


def _dash(value: float | None, unit: str = "") -> str:
    return format.decimal(value, 1, unit, missing="—")


def _rollback(session: Any) -> None:
    # With the database gone there is nothing to undo, and rolling back may fail too.
    with contextlib.suppress(Exception):
        session.rollback()


class _OwnBlueprintMixin:
    """Security headers and the database-outage page on the view's own blueprint.

    Flask-Admin makes one blueprint per view (named after its endpoint);
    whatever is registered on it runs for that view's requests only.
    """

    endpoint: str
    render: Any

    def create_blueprint(self, admin: Admin) -> Blueprint:
        blueprint: Blueprint = super().create_blueprint(admin)  # type: ignore[misc]
        blueprint.after_request(admin_headers)
        blueprint.register_error_handler(SQLAlchemyError, self.database_unavailable)
        return blueprint

    def database_unavailable(self, exc: SQLAlchemyError) -> tuple[str, int, dict[str, str]]:
        """The 503 page for a database that is down, hung or refusing us.

        One log line per request, naming the error's type and no SQL: a
        traceback per click during an outage buries the log, and the SQL with
        its parameters is no help in telling that the database is down.
        """
        session = get_state().db.session
        if session.registry.has():  # only a session this request opened has anything to undo
            _rollback(session)
        origin = type(getattr(exc, "orig", None) or exc).__name__
        log.error(
            "flask-server-status: admin %s %s: status database unavailable (%s: %s)",
            request.method,
            request.path,
            type(exc).__name__,
            origin,
        )
        html = self.render("flask_status/admin/unavailable.html")
        return html, 503, {"Retry-After": "30"}


class _StatusModelView(_OwnBlueprintMixin, StatusAccessMixin, ModelView):
    """What both views share: access rule, CSRF, the session, outage page, headers."""

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
        # ?page=10**30 reached the database as an OFFSET no driver can bind,
        # and a negative one as an OFFSET PostgreSQL refuses: both were a 500.
        # (?page_size= is safe: Flask-Admin keeps it to page_size_options.)
        if page is not None and not 0 <= page <= MAX_PAGE:
            flash(f"Invalid page number; pages go from 1 to at most {MAX_PAGE + 1}.", "error")
            page = 0
        count, data = super().get_list(
            page, sort_column, sort_desc, search, filters, execute=execute, page_size=page_size
        )
        return count, data

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


def _form_changes(form: Any, model: Route) -> dict[str, Any]:
    """What the edit form changes on ``model``, as the service takes it."""
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
    # The route's own verdict settings (None: the global one), validated
    # again by the service as the API's and the CLI's are.
    for field_name in service.OVERRIDES:
        value = getattr(form, field_name).data
        if value != getattr(model, field_name):
            changes[field_name] = value
    return changes


class RouteView(_StatusModelView):
    """List, search, rename, hide/show and delete the routes of the status page."""

    can_create = False
    can_view_details = False
    can_set_page_size = True
    #: The list's row Delete button says what it does (see DELETE_CONFIRMATION).
    list_template = "flask_status/admin/route_list.html"
    #: The edit form shows which rule is being edited, read-only.
    edit_template = "flask_status/admin/route_edit.html"

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
        route: Route | None = super().get_one(id)
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
        except Exception as exc:  # a hiccup in the sync must not hide the list
            sync_error: Exception | None = exc
        else:
            sync_error = None
        # With the database down this raises too, and the outage page says so
        # in one log line; only a sync that failed alone is worth its own.
        count, data = super().get_list(
            page, sort_column, sort_desc, search, filters, execute=execute, page_size=page_size
        )
        if sync_error is not None:
            log.warning(
                "flask-server-status: could not sync routes for the admin: %s",
                type(sync_error).__name__,
            )
        if execute:
            midnight = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
            ids = [route.id for route in data]
            # One read of the day roll-ups for the whole page, not one per row.
            g.setdefault(_TODAY_KEY, {}).update(
                window_totals(state, since=midnight, route_ids=ids) if ids else {}
            )
        return count, data

    def delete_confirmation(self, route: Route) -> str:
        """The question the row's Delete button asks (plain text; the template escapes it)."""
        return DELETE_CONFIRMATION.format(name=f"{route.name or route.rule} ({route.rule})")

    def get_list_row_actions(self) -> list[BaseListRowAction]:
        # Flask-Admin's Delete button asks "delete this record?"; ours says
        # what happens (route_list.html's macro), with the same form and URL.
        return [
            TemplateLinkRowAction("status_row_actions.delete_row", "Delete history and hide")
            if isinstance(row_action, DeleteRowAction)
            else row_action
            for row_action in super().get_list_row_actions()
        ]

    # -- the edit form: the shared RouteForm ------------------------------------

    def scaffold_form(self) -> type[Form]:
        # RouteForm carries the rules and messages the API validates with; the
        # admin's base class adds Flask-Admin's translations and, with a
        # SECRET_KEY, the CSRF token.
        base: type[BaseForm] = self.form_base_class
        return type("RouteEditForm", (base, RouteForm), {})

    def update_model(self, form: Any, model: Route) -> bool:
        changes = _form_changes(form, model)
        if not changes:
            return True
        session = self._session()
        try:
            self.on_model_change(form, model, False)
            service.update_route(session, model.rule, changes)
        except service.ServiceError as exc:
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
        except SQLAlchemyError:
            _rollback(session)
            raise  # the outage page (database_unavailable)
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
        except service.ServiceError as exc:
            session.rollback()
            flash(exc.message, "error")
            return False
        except SQLAlchemyError:
            _rollback(session)
            raise  # the outage page (database_unavailable)
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
        return bool(super().is_action_allowed(name))

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
            _rollback(session)
            if isinstance(exc, SQLAlchemyError) or not self.handle_view_exception(exc):
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
            except service.ServiceError as exc:
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


class BoundedIntEqualFilter(IntEqualFilter):
    """``IntEqualFilter`` that refuses numbers outside ``[low, high]``.

    Flask-Admin's filter passes any integer on, and a number past 64 bits
    made the database driver raise ``OverflowError`` (a 500). A value
    refused here becomes Flask-Admin's "Invalid Filter Value" message and the
    filter is left out, as for any value that does not parse.
    """

    def __init__(self, column: Any, name: str, low: int, high: int, **kwargs: Any) -> None:
        super().__init__(column, name, **kwargs)
        self.low = low
        self.high = high

    def clean(self, value: str) -> int:
        number = int(str(value).strip())  # ValueError for text, floats, 5000 digits
        if not self.low <= number <= self.high:
            raise ValueError(f"{self.name} must be between {self.low} and {self.high}.")
        return number


#: The largest id an INTEGER column holds on every database we support.
_MAX_ID = 2**31 - 1


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

    @property
    def column_descriptions(self) -> dict[str, str]:
        """The column help, written when the list renders from the settings in force."""
        descriptions = {"latency_p95": "Estimated from a fixed-bucket histogram."}
        if has_app_context():  # Flask-Admin also reads this when the view is made
            descriptions["outcome"] = outcome_help(get_state().settings)
        return descriptions

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
        BoundedIntEqualFilter(Log.route_id, "Route", 1, _MAX_ID, options=_RouteOptions()),
        BoundedIntEqualFilter(Log.status, "Status code", 100, 999),
        BoundedIntEqualFilter(
            Log.outcome,
            "Outcome",
            min(SUCCESS, FAILURE, NEUTRAL),
            max(SUCCESS, FAILURE, NEUTRAL),
            options=tuple((code, OUTCOME_NAMES[code]) for code in (SUCCESS, FAILURE, NEUTRAL)),
        ),
        UTCDateTimeBetweenFilter(Log.minute, "Minute (UTC)"),
        UTCDateTimeGreaterFilter(Log.minute, "Minute (UTC)"),
        UTCDateTimeSmallerFilter(Log.minute, "Minute (UTC)"),
    )


# -- Overview ---------------------------------------------------------------------------

#: Statuses that count as "failing now" in the summary.
_FAILING = (queries.DEGRADED, queries.PARTIAL_OUTAGE, queries.MAJOR_OUTAGE)


def status_summary(state: StatusState) -> dict[str, Any]:
    """What the admin's landing page shows: overall state, failing routes, last flush.

    ``overall`` and ``failing`` are the public page's verdicts (visible
    routes, the configured window and thresholds). ``last_stored`` is the
    newest minute any process has written, so it answers "are counts still
    arriving?" across workers; ``pending`` and ``last_error`` are this
    process's own buffer.
    """
    now = state.clock()
    statuses = queries.route_statuses(state, now=now, days=1, minutes=1)
    texts = i18n.texts(i18n.DEFAULT_LANGUAGE)
    overall = queries.overall_status(s.status for s in statuses)
    failing = [
        {"name": s.name, "rule": s.rule, "status": s.status, "label": texts[s.status]}
        for s in sorted(statuses, key=lambda s: -queries.STATUSES.index(s.status))
        if s.status in _FAILING
    ]
    stored = [s.last_data_at for s in statuses if s.last_data_at is not None]
    last = max(stored) if stored else None
    error = state.buffer.last_error
    return {
        "overall": overall,
        "overall_label": texts[overall],
        "routes": len(statuses),
        "failing": failing,
        "last_stored": last,
        "last_stored_iso": format.iso(last),
        "last_stored_text": format.utc_time(last, missing="nothing stored yet"),
        # The minute's start: "ago" counts from its end, when it was complete.
        "last_stored_ago": format.relative(last + timedelta(minutes=1), now) if last else "",
        "pending": state.buffer.pending(),
        "last_error": type(error).__name__ if error is not None else None,
    }


class _SummaryMixin:
    """Renders the summary template; shared by the Overview view and StatusIndexView."""

    render: Any

    def _summary_page(self) -> str:
        state = get_state()
        return self.render(  # type: ignore[no-any-return]
            "flask_status/admin/overview.html",
            summary=status_summary(state),
            routes_url=url_for(f"{ROUTES_ENDPOINT}.index_view"),
            page_url=url_for("flask_status.index"),
        )


class OverviewView(_SummaryMixin, _OwnBlueprintMixin, StatusAccessMixin, BaseView):
    """Status > Overview: the state of the status page at a glance.

    Added by :func:`~flask_server_status.admin.add_views` beside Routes and
    Logs, so every host gets it without touching its own admin index.
    """

    def __init__(self, *, basic_auth: HTTPBasicAuth | None = None, **kwargs: Any) -> None:
        self.basic_auth = basic_auth if basic_auth is not None else make_basic_auth()
        super().__init__(**kwargs)

    @expose("/")
    def index(self) -> str:
        return self._summary_page()


class StatusIndexView(_SummaryMixin, _OwnBlueprintMixin, AdminIndexView):
    """An admin index ("Home") that shows the status summary instead of a blank page.

    The admin's index view is the host's to choose, so the extension never
    replaces it; a host that wants the summary on its landing page says so::

        admin = Admin(app, index_view=StatusIndexView())

    Access is the host's as for any ``AdminIndexView`` (subclass it and
    override ``is_accessible``); the Status views follow whatever it decides.
    """

    @expose("/")
    def index(self) -> str:
        return self._summary_page()
