"""The public status page: HTML, ``summary.json``, ``updates.json``, an Atom feed, badges.

The parts, in the order a request goes through them:

* :mod:`.views` - the view functions; each finds its app with ``get_state()``;
* :mod:`.render` - the page's HTML context: squares, rows, human times, and the
  texts that explain the classification, written from the configuration;
* :mod:`.summary` - the one JSON encoder: ``summary.json`` and ``updates.json``;
* :mod:`.badge` - SVG badges sized to their text;
* :mod:`.caching` - caching headers, ETags, a short reuse of renderings;

Times, percentages and durations are written by :mod:`flask_server_status.format`,
shared with the CLI and the admin.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from flask import Blueprint

from .. import i18n
from ..headers import page_headers
from ..routes import PAGE_BLUEPRINT
from . import summary as _summary
from . import views
from .render import STATUS_CLASSES
from .summary import INDICATORS, banner_key, encode, incident_impact

if TYPE_CHECKING:
    from ..snapshots import Snapshot
    from ..state import StatusState

__all__ = [
    "INDICATORS",
    "STATUS_CLASSES",
    "banner_key",
    "build_summary",
    "encode",
    "incident_impact",
    "make_blueprint",
]


def build_summary(
    state: StatusState, snapshot: Snapshot, page_url: str, language: str = "en"
) -> dict[str, Any]:
    """The ``summary.json`` document of ``snapshot`` for ``state``'s app (DESIGN.md's shape)."""
    t: Mapping[str, str] = i18n.texts(language)
    return _summary.build_summary(snapshot, state.settings, t, views.page_title(state, t), page_url)


def make_blueprint(state: StatusState) -> Blueprint:
    """The public blueprint ``flask_status``: page, JSON, Atom feed, badges, route details.

    It brings its own templates (``templates/flask_status/``) and static files,
    served under ``<url_prefix>/static`` so the host's ``/static`` is untouched.
    The views are module-level functions; ``state`` only decides where the
    static files are served.
    """
    static_path = "/static" if state.url_prefix else "/flask-status-static"
    bp = Blueprint(
        PAGE_BLUEPRINT,
        __name__,
        template_folder="../templates",
        static_folder="../static/flask_status",
        static_url_path=static_path,
    )
    bp.add_url_rule("" if state.url_prefix else "/", "index", views.index, methods=["GET"])
    bp.add_url_rule("/summary.json", "summary", views.summary, methods=["GET"])
    bp.add_url_rule("/updates.json", "updates", views.updates, methods=["GET"])
    bp.add_url_rule("/history.atom", "history", views.history, methods=["GET"])
    bp.add_url_rule("/badge/<int:route_id>.svg", "badge", views.badge, methods=["GET"])
    bp.add_url_rule("/routes/<int:route_id>", "route", views.route_details, methods=["GET"])
    bp.after_request(page_headers)  # nosniff and the page's CSP (headers.py)
    return bp
