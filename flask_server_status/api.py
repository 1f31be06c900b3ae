"""The configure API: rename, hide and delete routes with a Bearer token.

Registered at ``/flask-status`` only when ``API_ENABLED`` is true (the
extension refuses to start with the API enabled and no ``API_SECRET``)::

    PUT    /flask-status/configure     {"rule": "/", "name": "Hello World!", "doc": ""}
    DELETE /flask-status/configure     {"rule": "/"}
    GET    /flask-status/configure     every route, hidden ones included
    GET    /flask-status/openapi.json  the OpenAPI 3.1 document of the above (no token)

Every answer is JSON. Changes go through :mod:`.service`, the same path the
admin uses, so a refused request changes nothing and an accepted one is one
transaction.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, jsonify, request, url_for
from flask_httpauth import HTTPTokenAuth
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.datastructures import Authorization
from werkzeug.exceptions import HTTPException

from . import registry, service
from .forms import DOC_MAX, NAME_MAX
from .models import UNMATCHED_RULE, Route

if TYPE_CHECKING:
    from .state import StatusState

__all__ = ["BLUEPRINT_NAME", "MAX_BODY_BYTES", "REALM", "make_blueprint", "openapi_document"]

log = logging.getLogger("flask_server_status")

BLUEPRINT_NAME = "flask_status_api"

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


class _BearerAuth(HTTPTokenAuth):
    """``HTTPTokenAuth`` that also reads tokens containing ``=``.

    Werkzeug parses ``Bearer a=b`` as auth parameters (token ``None``), so a
    secret with an ``=`` inside (not just base64 padding) could never match;
    the original project compared the whole header, so such secrets exist.
    """

    def get_auth(self) -> Authorization | None:
        auth = super().get_auth()
        if auth is not None and auth.token is None and auth.type == "bearer":
            _, _, rest = request.headers.get("Authorization", "").partition(" ")
            auth = Authorization("bearer", token=rest.strip())
        return auth


def _token_bytes(value: str) -> bytes:
    # WSGI carries header bytes as latin-1 text; compare the bytes the client sent.
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogatepass")


class _Refused(Exception):
    def __init__(self, status: int, message: str, errors: dict[str, list[str]] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors or {}


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


def make_blueprint(state: StatusState) -> Blueprint:
    """The ``flask_status_api`` blueprint for one app's ``state``.

    :param state: the app's :class:`~.extension.StatusState`; its settings
        hold the secret, its ``db.session`` is where changes are made.
    """
    bp = Blueprint(BLUEPRINT_NAME, __name__)
    auth = _BearerAuth(scheme="Bearer", realm=REALM)
    secret = _token_bytes(state.settings.api_secret or "")

    @auth.verify_token
    def verify_token(token: str) -> bool:
        # Constant time, so the answer's timing does not reveal the secret.
        return bool(secret) and hmac.compare_digest(_token_bytes(token), secret)

    @auth.error_handler
    def auth_error(status: int) -> Response:
        challenge = auth.authenticate_header()
        given = auth.get_auth()
        if given is not None and given.token:
            # RFC 6750 3.1: name the error only when a token was sent. Neither
            # the token nor the secret is ever echoed.
            challenge += ', error="invalid_token"'
            message = "Invalid token."
        else:
            message = "Authentication required: send 'Authorization: Bearer <API_SECRET>'."
        return _error(401, message, WWW_Authenticate=challenge)

    @bp.after_request
    def no_store(response: Response) -> Response:
        response.headers["Cache-Control"] = "no-store"
        return response

    @bp.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        code = exc.code or 500
        return _error(code, exc.description or exc.name)

    @bp.errorhandler(_Refused)
    def refused(exc: _Refused) -> Response:
        return _error(exc.status, exc.message, exc.errors)

    @bp.errorhandler(service.RouteError)
    def route_error(exc: service.RouteError) -> Response:
        state.db.session.rollback()
        return _error(exc.status, exc.message, exc.errors)

    @bp.errorhandler(SQLAlchemyError)
    def database_error(exc: SQLAlchemyError) -> Response:
        state.db.session.rollback()
        log.error("flask-server-status: configure API: database error: %s", type(exc).__name__)
        return _error(503, "The status database is not available; nothing was changed.")

    @bp.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        state.db.session.rollback()
        log.exception("flask-server-status: configure API failed")
        return _error(500, "Internal error; nothing was changed.")

    @auth.login_required
    def _configure() -> Response:
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
        rules = list(registry.collect(state.app, state.routes))
        return jsonify(openapi_document(server or "/", rules))

    def not_found(path: str = "") -> Response:
        return _error(404, "Not found: the configure API has /configure and /openapi.json.")

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


def _read_body() -> dict[str, Any]:
    """The request's JSON object, or :class:`_Refused` 400/413."""
    if (request.content_length or 0) > MAX_BODY_BYTES:
        raise _Refused(413, f"The body is larger than {MAX_BODY_BYTES} bytes.")
    raw = request.stream.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise _Refused(413, f"The body is larger than {MAX_BODY_BYTES} bytes.")
    try:
        # Parsed by hand rather than request.get_json(): any Content-Type is
        # accepted (curl -d sends a form type), and a deeply nested body must
        # be a 400, not a RecursionError.
        body = json.loads(raw) if raw.strip() else None
    except (ValueError, RecursionError):
        raise _Refused(400, "The body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise _Refused(400, 'The body must be a JSON object, e.g. {"rule": "/"}.')
    if "rule" not in body:
        raise _Refused(400, "Missing field: rule.", {"rule": ["This field is required."]})
    if not isinstance(body["rule"], str):
        raise _Refused(400, "rule must be a string.", {"rule": ["rule must be a string."]})
    return body


def _sync(state: StatusState) -> None:
    # Routes get their rows on the first flush; a script may configure a
    # route before any traffic, so make sure the rows exist.
    state.route_ids()


def _put(state: StatusState, body: dict[str, Any]) -> Response:
    changes = {key: value for key, value in body.items() if key != "rule"}
    service.check_types(changes)
    if not changes:
        raise _Refused(400, "Nothing to change: give name, doc and/or hidden.")
    _sync(state)
    route = service.update_route(state.db.session, body["rule"], changes)
    return jsonify({"message": "Route modified", "route": route.to_dict()})


def _delete(state: StatusState, body: dict[str, Any]) -> Response:
    unknown = sorted(set(body) - {"rule"})
    if unknown:
        raise _Refused(400, f"Unknown fields: {', '.join(unknown)}; DELETE takes only rule.")
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

_NO_CONTROL = "\\u0000-\\u001f\\u007f-\\u009f"
#: One line, not blank: what RouteForm accepts for a name (before trimming).
NAME_PATTERN = f"^[^{_NO_CONTROL}]*[^\\s{_NO_CONTROL}][^{_NO_CONTROL}]*$"
#: Line breaks and tabs allowed, other control characters not.
DOC_PATTERN = "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f]*$"


def _json(schema_ref: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_ref}"}}},
    }


def _errors(*codes: int) -> dict[str, Any]:
    meaning = {
        400: "The body is not a JSON object, lacks rule, names an unknown field, or a value"
        " has the wrong type.",
        401: "Missing or wrong Bearer token.",
        404: "No route has this rule.",
        413: f"The body is larger than {MAX_BODY_BYTES} bytes.",
        422: f"A value is out of bounds: empty name, name over {NAME_MAX} or description"
        f" over {DOC_MAX} characters (after trimming), or control characters.",
        503: "The status database is not available; nothing was changed.",
    }
    out: dict[str, Any] = {}
    for code in codes:
        out[str(code)] = _json("Error", meaning[code])
        if code == 401:
            out[str(code)]["headers"] = {
                "WWW-Authenticate": {
                    "description": f'Bearer realm="{REALM}"[, error="invalid_token"]',
                    "schema": {"type": "string", "pattern": "^Bearer "},
                }
            }
    return out


def openapi_document(
    server: str = "/flask-status", rules: list[str] | None = None
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the configure API.

    :param server: the URL path the blueprint is mounted at.
    :param rules: the app's URL rules, listed as examples of ``rule``.
    """
    rule: dict[str, Any] = {
        "type": "string",
        "description": "The URL rule, exactly as the app declares it (case and spaces count).",
    }
    if rules:
        rule["examples"] = rules
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "flask-server-status configure API",
            "version": "1",
            "description": "Rename, hide and delete the routes shown on the status page.",
        },
        "servers": [{"url": server}],
        "security": [{"bearerAuth": []}],
        "paths": {
            "/configure": {
                "get": {
                    "operationId": "listRoutes",
                    "summary": "Every route, hidden ones included, in page order.",
                    "responses": {
                        "200": _json("RouteList", "The routes."),
                        **_errors(401, 503),
                    },
                },
                "put": {
                    "operationId": "modifyRoute",
                    "summary": "Change the name, description and/or visibility of a route.",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/RouteChange"},
                                "example": {"rule": "/", "name": "Hello World!", "doc": ""},
                            }
                        },
                    },
                    "responses": {
                        "200": _json("RouteModified", "The route after the change."),
                        **_errors(400, 401, 404, 413, 422, 503),
                    },
                },
                "delete": {
                    "operationId": "deleteRoute",
                    "summary": "Hide a route and delete its history; it stays hidden until"
                    " shown again (admin, or PUT hidden=false).",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/RouteRef"},
                                "example": {"rule": "/"},
                            }
                        },
                    },
                    "responses": {
                        "200": _json("Message", "The route is deleted."),
                        **_errors(400, 401, 404, 413, 503),
                    },
                },
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document.",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "The OpenAPI document.",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The app's API_SECRET (FLASK_STATUS_API_SECRET).",
                }
            },
            "schemas": {
                "RouteRef": {
                    "type": "object",
                    "required": ["rule"],
                    "additionalProperties": False,
                    "properties": {"rule": rule},
                },
                "RouteChange": {
                    "type": "object",
                    "required": ["rule"],
                    "minProperties": 2,
                    "additionalProperties": False,
                    "properties": {
                        "rule": rule,
                        "name": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": NAME_MAX,
                            "pattern": NAME_PATTERN,
                            "description": "Shown instead of the rule; trimmed; not blank.",
                        },
                        "doc": {
                            "type": "string",
                            "maxLength": DOC_MAX,
                            "pattern": DOC_PATTERN,
                            "description": "Shown under the name; trimmed; may be empty.",
                        },
                        "hidden": {"type": "boolean"},
                    },
                },
                "Route": {
                    "type": "object",
                    "required": [
                        "id",
                        "rule",
                        "endpoint",
                        "name",
                        "doc",
                        "hidden",
                        "position",
                        "updated_at",
                    ],
                    "properties": {
                        "id": {"type": "integer"},
                        "rule": {"type": "string"},
                        "endpoint": {"type": "string"},
                        "name": {"type": "string"},
                        "doc": {"type": "string"},
                        "hidden": {"type": "boolean"},
                        "position": {"type": "integer"},
                        "updated_at": {
                            "type": ["string", "null"],
                            "format": "date-time",
                            "description": "UTC, ISO 8601 with Z.",
                        },
                    },
                },
                "RouteList": {
                    "type": "object",
                    "required": ["routes"],
                    "properties": {
                        "routes": {"type": "array", "items": {"$ref": "#/components/schemas/Route"}}
                    },
                },
                "RouteModified": {
                    "type": "object",
                    "required": ["message", "route"],
                    "properties": {
                        "message": {"const": "Route modified"},
                        "route": {"$ref": "#/components/schemas/Route"},
                    },
                },
                "Message": {
                    "type": "object",
                    "required": ["message"],
                    "properties": {"message": {"type": "string"}},
                },
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {"type": "string"},
                        "errors": {
                            "type": "object",
                            "description": "Messages per field, when fields are at fault.",
                            "additionalProperties": {"type": "array", "items": {"type": "string"}},
                        },
                    },
                },
            },
        },
    }
