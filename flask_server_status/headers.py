"""Security headers on the responses of our own blueprints, never on the host's.

Each blueprint of ours registers one of these functions as its
``after_request``; a blueprint's ``after_request`` runs only for requests
routed to that blueprint, so the host app's own pages keep whatever headers
the host chose::

    bp.after_request(headers.page_headers)      # status page, JSON, feed, badges
    bp.after_request(headers.api_headers)       # the configure API
    view.blueprint.after_request(headers.admin_headers)   # our admin views

What each sets, and why:

* ``X-Content-Type-Options: nosniff`` everywhere: a description shown in a
  JSON answer or a badge must never be sniffed into HTML by a browser.
* The page's ``Content-Security-Policy`` allows exactly what the page uses:
  its own stylesheet and script (``static/flask_status/``), ``fetch`` of
  ``summary.json`` from the same origin, and the inline ``data:`` favicon.
  No inline script runs (the page's config is a JSON data block, which a CSP
  does not block) and no inline style attribute is written by the server.
  The page may be framed (status widgets are a common embedding).
* The API answers JSON only, so its policy allows nothing at all.
* The admin views may not be framed (``X-Frame-Options: DENY`` for older
  browsers, ``frame-ancestors 'none'`` for current ones): a framed admin
  invites click-jacking of its Delete buttons. Flask-Admin's templates use
  inline scripts, so the admin gets no stricter policy than that.

A header a view of ours already set is left alone, and Flask runs the app's
own ``after_request`` functions after a blueprint's, so a host that wants a
different policy can still replace ours.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Response

__all__ = [
    "ADMIN_CSP",
    "API_CSP",
    "PAGE_CSP",
    "admin_headers",
    "api_headers",
    "nosniff",
    "page_headers",
]

#: The public page, its JSON, feed and badges.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; form-action 'self'; base-uri 'none'"
)

#: JSON only: nothing may load, nothing may frame it.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"

#: Flask-Admin's pages: only framing is forbidden (see the module docstring).
ADMIN_CSP = "frame-ancestors 'none'"


def nosniff(response: Response) -> Response:
    """``X-Content-Type-Options: nosniff``: the declared type is the only type."""
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response


def page_headers(response: Response) -> Response:
    """``nosniff`` and :data:`PAGE_CSP`, for the public page blueprint."""
    response.headers.setdefault("Content-Security-Policy", PAGE_CSP)
    return nosniff(response)


def api_headers(response: Response) -> Response:
    """``nosniff`` and :data:`API_CSP`, for the configure API."""
    response.headers.setdefault("Content-Security-Policy", API_CSP)
    return nosniff(response)


def admin_headers(response: Response) -> Response:
    """``nosniff``, ``X-Frame-Options: DENY`` and :data:`ADMIN_CSP`, for our admin views."""
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Content-Security-Policy", ADMIN_CSP)
    return nosniff(response)
