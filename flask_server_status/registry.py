"""Which URL rules the page shows, and what it calls them.

Routes come from ``app.url_map`` (so rules added after ``FlaskStatus(app)``
are found on the next sync); the name from a ``# Name`` line of the view's
docstring, the rest of the docstring being the description. Static files,
the extension's own endpoints and Flask-Admin's are never tracked.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from flask import Flask

_NAME_LINE = re.compile(r"^\s*#\s*(?P<name>\S.*?)\s*$")

#: Blueprint names of the extension itself.
OWN_BLUEPRINTS = frozenset({"flask_status", "flask_status_api"})


@dataclass(frozen=True)
class RouteSpec:
    """A rule as the code describes it."""

    rule: str
    endpoint: str
    name: str
    doc: str
    position: int


def parse_docstring(doc: str | None, fallback: str) -> tuple[str, str]:
    """Split a view docstring into ``(name, description)``.

    >>> parse_docstring('''
    ...     # Index
    ...     The landing page.
    ... ''', "index")
    ('Index', 'The landing page.')
    >>> parse_docstring("Just words.", "index")
    ('index', 'Just words.')
    """
    if not doc:
        return fallback, ""
    lines = inspect.cleandoc(doc).splitlines()
    name = fallback
    for index, line in enumerate(lines):
        match = _NAME_LINE.match(line)
        if match:
            name = match.group("name")
            del lines[index]
            break
    return name[:100], "\n".join(lines).strip()


def _view_doc(view: Callable[..., Any] | None) -> str | None:
    if view is None:
        return None
    view_class = getattr(view, "view_class", None)  # MethodView.as_view()
    return inspect.getdoc(view_class) if view_class is not None else inspect.getdoc(view)


def _admin_blueprints(app: Flask) -> set[str]:
    names: set[str] = set()
    admins = app.extensions.get("admin", [])
    if not isinstance(admins, (list, tuple)):
        admins = [admins]
    for admin in admins:
        for view in getattr(admin, "_views", []):
            blueprint = getattr(view, "blueprint", None)
            if blueprint is not None:
                names.add(blueprint.name)
    return names


def collect(app: Flask, only: Iterable[str] | None = None) -> dict[str, RouteSpec]:
    """The rules of ``app`` the page may show, keyed by rule string.

    :param only: the ``routes=`` list given to the extension, if any.
    """
    wanted = set(only) if only is not None else None
    skip_blueprints = OWN_BLUEPRINTS | _admin_blueprints(app)
    specs: dict[str, RouteSpec] = {}
    for position, rule in enumerate(app.url_map.iter_rules()):
        endpoint = rule.endpoint
        blueprint = endpoint.rpartition(".")[0]
        if endpoint == "static" or endpoint.endswith(".static") or blueprint in skip_blueprints:
            continue
        if wanted is not None and rule.rule not in wanted:
            continue
        if rule.rule in specs:  # the same path for other methods, other view
            continue
        name, doc = parse_docstring(_view_doc(app.view_functions.get(endpoint)), endpoint)
        specs[rule.rule] = RouteSpec(rule.rule, endpoint, name, doc, position)
    return specs


def url_map_signature(app: Flask) -> int:
    """Changes whenever rules are added to the app (Flask never removes any)."""
    return len(app.url_map._rules)
