"""Counting each response: rule, status and latency into the buffer.

This is everything a request pays for. It touches no database and no file;
the drain thread does the rest later.

It is a WSGI middleware around ``app.wsgi_app`` rather than
``before_request``/``after_request`` hooks: Flask runs every hook through
``ensure_sync`` (an ``inspect`` call per hook per request), which alone cost
more than our whole budget (see ``bench/``). The middleware also sees what
hooks can miss: responses made by error handlers and exceptions that
propagate out of the app (testing and debug mode), which count as 500.

Requests that matched no URL rule are counted under one key
(:data:`~.models.UNMATCHED_RULE`), so random paths cannot grow the buffer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from time import perf_counter
from typing import Any

from flask import Flask, got_request_exception, request
from werkzeug.exceptions import HTTPException
from werkzeug.routing import RequestRedirect

from .buffer import Buffer

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


_RULE = "flask_server_status.rule"


class CaptureMiddleware:
    """Wraps a Flask app's ``wsgi_app`` and queues one event per response.

    The event is raw on purpose - (status line, matched rule) pairs sent,
    and two ``perf_counter`` readings - because everything derived from it
    (status code, minute, histogram bucket) can be worked out later by the
    drain, off the request path.

    :param wsgi_app: the app's ``wsgi_app`` to wrap.
    :param buffer: where events go, through :meth:`.Buffer.record`.
    :param app: the Flask app, to find the rule of a request that raised.
    """

    def __init__(self, wsgi_app: WSGIApp, buffer: Buffer, app: Flask | None = None) -> None:
        self.wsgi_app = wsgi_app
        self.buffer = buffer
        self.app = app
        # Bound once: the request path pays one call, no attribute lookups.
        self.record = buffer.record

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        start = perf_counter()
        sent: list[tuple[str, Any]] = []

        def capture_status(status: str, headers: Any, exc_info: Any = None) -> Any:
            # Flask calls this while the request context is still pushed,
            # so its request object (and the rule routing matched, or None)
            # is still in the environ; Flask removes it right after.
            request = environ.get("werkzeug.request")
            sent.append((status, request.url_rule if request is not None else None))
            return start_response(status, headers, exc_info)

        try:
            return self.wsgi_app(environ, capture_status)
        except BaseException:
            # The app raised instead of answering: an exception in testing
            # or debug mode, or SystemExit / KeyboardInterrupt (a worker that
            # gunicorn aborts on its timeout), which Flask never handles. The
            # server answers 500, or nothing; either way the request failed,
            # and on its own rule.
            sent.append(("500", self._rule_of(environ)))
            raise
        finally:
            self.record(sent, start, perf_counter())

    def _rule_of(self, environ: dict[str, Any]) -> Any:
        """The rule of a request that raised: kept by :meth:`note_exception`, or matched again.

        ``got_request_exception`` only fires for :class:`Exception`; for the
        rest the URL is matched again here, which costs nothing unless a
        request raised.
        """
        rule = environ.get(_RULE)
        if rule is not None or self.app is None:
            return rule
        app = self.app
        try:
            server_name = app.config.get("SERVER_NAME")
            subdomain = None
            if app.url_map.host_matching:
                server_name = None
            elif not app.subdomain_matching:
                subdomain = app.url_map.default_subdomain or ""
            adapter = app.url_map.bind_to_environ(
                environ, server_name=server_name, subdomain=subdomain
            )
            rule, _args = adapter.match(return_rule=True)
        except (HTTPException, RequestRedirect):
            return None
        except Exception:  # counting never breaks a request, not even a failed one
            return None
        return rule

    def note_exception(self, sender: Flask, exception: BaseException, **extra: Any) -> None:
        """``got_request_exception`` receiver: keep the rule of a request that raised."""
        request.environ[_RULE] = request.url_rule


def install(app: Flask, buffer: Buffer) -> None:
    """Count every response of ``app`` into ``buffer``."""
    middleware = CaptureMiddleware(app.wsgi_app, buffer, app)
    app.wsgi_app = middleware  # type: ignore[method-assign]
    # The signal only fires for unhandled exceptions: free on the normal path.
    got_request_exception.connect(middleware.note_exception, app)
