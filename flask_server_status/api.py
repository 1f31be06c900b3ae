"""The configure API: rename, hide and delete routes with a Bearer token.

Registered at ``/flask-status`` only when ``API_ENABLED`` is true (the
extension refuses to start with the API enabled and no ``API_SECRET``)::

    PUT    /flask-status/configure     {"rule": "/", "name": "Hello World!", "doc": ""}
    DELETE /flask-status/configure     {"rule": "/"}
    GET    /flask-status/configure     every route, hidden ones included
    GET    /flask-status/openapi.json  the OpenAPI 3.1 document of the above (no token)

The OpenAPI document is ``openapi.json`` beside this module (package data),
served with its ``servers`` entry set to where the blueprint is mounted. It
names no rule of the app: the route table, hidden routes included, is only
for callers with the token.

Every answer is JSON. Changes go through :mod:`.service`, the same path the
admin uses, so a refused request changes nothing and an accepted one is one
transaction.
"""

from __future__ import annotations

import copy
import functools
import hmac
import json
import logging
from importlib import resources
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, g, jsonify, request, url_for
from flask_httpauth import HTTPTokenAuth
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException

from . import service
from .headers import api_headers
from .models import UNMATCHED_RULE, Route
from .routes import API_BLUEPRINT
from .service import ServiceError
from .state import get_state

if TYPE_CHECKING:
    from .state import StatusState

__all__ = ["BLUEPRINT_NAME", "MAX_BODY_BYTES", "REALM", "make_blueprint", "openapi_document"]

log = logging.getLogger("flask_server_status")

BLUEPRINT_NAME = API_BLUEPRINT

#: The realm named in ``WWW-Authenticate: Bearer realm="..."``.
REALM = "flask-server-status"

#: Larger bodies are refused with 413 before they are parsed; a valid body is
#: a few hundred bytes at most.
MAX_BODY_BYTES = 64 * 1024

_CONFIGURE_METHODS = ("GET", "HEAD", "PUT", "DELETE", "OPTIONS")
_OPENAPI_METHODS = ("GET", "HEAD", "OPTIONS")
# Methods Werkzeug would refuse during routing, before any handler of ours can
# answer; routing them to our views lets us answer 405 in JSON with a correct
# Allow header instead of the host's (HTML) error page.
_OTHER_METHODS = ("POST", "PATCH", "TRACE")


def _token_bytes(value: str) -> bytes:
    # WSGI carries header bytes as latin-1 text; compare the bytes the client sent.
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogatepass")


def _error(
    status: int, message: str, errors: dict[str, list[str]] | None = None, **headers: str
) -> Response:
    body: dict[str, Any] = {"error": message}
    if errors:
        body["errors"] = errors
    response = jsonify(body)
    response.status_code = status
    for name, value in headers.items():
        response.headers[name.replace("_", "-")] = value
    return response


# -- the views and handlers: module-level, each reaching its app's state -------------
#
# One HTTPTokenAuth serves every app: the token is checked against the secret of
# the app handling the request (get_state()), so nothing here is built per app.
_auth = HTTPTokenAuth(scheme="Bearer", realm=REALM)


@_auth.verify_token
def _verify_token(token: str) -> bool:
    g.flask_status_token_sent = True
    secret = _token_bytes(get_state().settings.api_secret or "")
    # Constant time, so the answer's timing does not reveal the secret.
    return bool(secret) and hmac.compare_digest(_token_bytes(token), secret)


@_auth.error_handler
def _auth_error(status: int) -> Response:
    challenge = _auth.authenticate_header()
    if g.get("flask_status_token_sent"):
        # RFC 6750 3.1: name the error only when a token was sent. Neither
        # the token nor the secret is ever echoed.
        challenge += ', error="invalid_token"'
        message = "Invalid token."
    else:
        message = "Authentication required: send 'Authorization: Bearer <API_SECRET>'."
    return _error(401, message, WWW_Authenticate=challenge)


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return api_headers(response)


def _http_error(exc: HTTPException) -> Response:
    return _error(exc.code or 500, exc.description or exc.name)


def _refused(exc: ServiceError) -> Response:
    get_state().db.session.rollback()
    return _error(exc.status, exc.message, exc.errors)


def _database_error(exc: SQLAlchemyError) -> Response:
    get_state().db.session.rollback()
    log.error("flask-server-status: configure API: database error: %s", type(exc).__name__)
    return _error(503, "The status database is not available; nothing was changed.")


def _unexpected(exc: Exception) -> Response:
    get_state().db.session.rollback()
    log.exception("flask-server-status: configure API failed")
    return _error(500, "Internal error; nothing was changed.")


@_auth.login_required
def _configure() -> Response:
    state = get_state()
    if request.method in ("GET", "HEAD"):
        return _list_routes(state)
    body = _read_body()
    if request.method == "PUT":
        return _put(state, body)
    return _delete(state, body)


def configure() -> Response:
    """Rename, hide or delete a route; list the routes."""
    refused = _other_method(_CONFIGURE_METHODS)
    return refused if refused is not None else _configure()


def openapi() -> Response:
    """The OpenAPI document of this API (no token needed: it holds no data)."""
    refused = _other_method(_OPENAPI_METHODS)
    if refused is not None:
        return refused
    server = url_for(".configure").rsplit("/", 1)[0]
    return jsonify(openapi_document(server or "/"))


def not_found(path: str = "") -> Response:
    """Any other path under the API's prefix: a JSON 404."""
    return _error(404, "Not found: the configure API has /configure and /openapi.json.")


def make_blueprint(state: StatusState) -> Blueprint:
    """The ``flask_status_api`` blueprint for one app's ``state``.

    Only wiring: the views and handlers above are module-level and find the
    app's state (its secret, its ``db.session``) with :func:`~.state.get_state`.

    :param state: the app's :class:`~.state.StatusState`; unused here, kept so
        every blueprint of the extension is made the same way.
    """
    bp = Blueprint(BLUEPRINT_NAME, __name__)
    bp.before_request(_token_with_equals_sign)
    bp.after_request(_no_store)
    bp.register_error_handler(HTTPException, _http_error)
    bp.register_error_handler(ServiceError, _refused)
    bp.register_error_handler(SQLAlchemyError, _database_error)
    bp.register_error_handler(Exception, _unexpected)
    every = [*_CONFIGURE_METHODS, *_OTHER_METHODS]
    bp.add_url_rule(
        "/configure", view_func=configure, methods=every, provide_automatic_options=False
    )
    bp.add_url_rule(
        "/openapi.json",
        view_func=openapi,
        methods=[*_OPENAPI_METHODS, "PUT", "DELETE", *_OTHER_METHODS],
        provide_automatic_options=False,
    )
    bp.add_url_rule("/", view_func=not_found, endpoint="not_found_root", methods=every)
    bp.add_url_rule("/<path:path>", view_func=not_found, methods=every)
    return bp


def _other_method(allowed: tuple[str, ...]) -> Response | None:
    """405 for a method the resource lacks, 204 for OPTIONS, else None."""
    allow = ", ".join(allowed)
    if request.method == "OPTIONS":
        response = Response(status=204)
        response.headers["Allow"] = allow
        return response
    if request.method not in allowed:
        return _error(405, f"Method {request.method} is not allowed here.", Allow=allow)
    return None


def _token_with_equals_sign() -> None:
    """Give Flask-HTTPAuth the token of ``Bearer a=b`` (a ``before_request``).

    Werkzeug reads a credential with an ``=`` inside (not only base64
    padding) as auth parameters and leaves ``token`` empty, so such a secret
    could never match; the original project compared the whole header, so
    such secrets exist. The parsed :class:`~werkzeug.datastructures.Authorization`
    is cached on the request, and Flask-HTTPAuth reads that same object.
    """
    given = request.authorization
    if given is not None and given.type == "bearer" and given.token is None:
        _, _, rest = request.headers.get("Authorization", "").partition(" ")
        given.token = rest.strip() or None


def _read_body() -> dict[str, Any]:
    """The request's JSON object, or :class:`~.service.ServiceError` 400/413."""
    if (request.content_length or 0) > MAX_BODY_BYTES:
        raise ServiceError(413, f"The body is larger than {MAX_BODY_BYTES} bytes.")
    raw = request.stream.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise ServiceError(413, f"The body is larger than {MAX_BODY_BYTES} bytes.")
    try:
        # Parsed by hand rather than request.get_json(): any Content-Type is
        # accepted (curl -d sends a form type), and a deeply nested body must
        # be a 400, not a RecursionError.
        body = json.loads(raw) if raw.strip() else None
    except (ValueError, RecursionError):
        raise ServiceError(400, "The body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise ServiceError(400, 'The body must be a JSON object, e.g. {"rule": "/"}.')
    if "rule" not in body:
        raise ServiceError(400, "Missing field: rule.", {"rule": ["This field is required."]})
    if not isinstance(body["rule"], str):
        raise ServiceError(400, "rule must be a string.", {"rule": ["rule must be a string."]})
    return body


def _sync(state: StatusState) -> None:
    # Routes get their rows on the first flush; a script may configure a
    # route before any traffic, so make sure the rows exist.
    state.route_ids()


def _put(state: StatusState, body: dict[str, Any]) -> Response:
    changes = {key: value for key, value in body.items() if key != "rule"}
    service.check_types(changes)
    if not changes:
        raise ServiceError(400, f"Nothing to change: give any of {', '.join(service.EDITABLE)}.")
    _sync(state)
    route = service.update_route(state.db.session, body["rule"], changes)
    return jsonify({"message": "Route modified", "route": route.to_dict()})


def _delete(state: StatusState, body: dict[str, Any]) -> Response:
    unknown = sorted(set(body) - {"rule"})
    if unknown:
        raise ServiceError(400, f"Unknown fields: {', '.join(unknown)}; DELETE takes only rule.")
    _sync(state)
    service.get_route(state.db.session, body["rule"])  # 404 before touching the buffer
    # End the read transaction: SQLite refuses to turn a snapshot older than
    # the flush's write into a write transaction.
    state.db.session.rollback()
    try:
        # Counts of this route still buffered here would otherwise land after
        # the purge and bring part of its history back if it is shown again.
        state.buffer.flush()
    except Exception as exc:  # the purge below still hides it; counts are kept
        log.warning("flask-server-status: flush before delete failed: %s", type(exc).__name__)
    service.delete_route(state.db.session, body["rule"])
    return jsonify({"message": "Route deleted"})


def _list_routes(state: StatusState) -> Response:
    _sync(state)
    routes = state.db.session.execute(
        select(Route).where(Route.rule != UNMATCHED_RULE).order_by(Route.position, Route.id)
    ).scalars()
    return jsonify({"routes": [route.to_dict() for route in routes]})


# -- the OpenAPI document -----------------------------------------------------------


@functools.cache
def _openapi_file() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("openapi.json").read_text("utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


def openapi_document(server: str = "/flask-status") -> dict[str, Any]:
    """The OpenAPI 3.1 document of the configure API (``openapi.json``), as a new dict.

    :param server: the URL path the blueprint is mounted at; the document's
        ``servers`` names it, so clients resolve its paths against it.
    """
    document = copy.deepcopy(_openapi_file())
    document["servers"] = [{"url": server}]
    return document
