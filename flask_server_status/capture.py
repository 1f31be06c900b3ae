"""Counting each response: rule, status and latency into the buffer.

This is everything a request pays for. It touches no database and no file;
the flusher does the rest later.

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

from .buffer import MAX_EVENTS, Buffer

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


_RULE = "flask_server_status.rule"


class CaptureMiddleware:
    """Wraps a Flask app's ``wsgi_app`` and queues one event per response.

    The event is raw on purpose - (status line, matched rule) pairs sent,
    and two ``perf_counter`` readings - because everything derived from it
    (status code, minute, histogram bucket) can be worked out later by the
    flusher, off the request path.
    """

    def __init__(self, wsgi_app: WSGIApp, buffer: Buffer) -> None:
        self.wsgi_app = wsgi_app
        self.buffer = buffer
        self.events = buffer._events

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
            # The app raised instead of answering (testing/debug mode): the
            # server answers 500. note_exception() kept the rule.
            sent.append(("500", environ.get(_RULE)))
            raise
        finally:
            events = self.events
            if len(events) < MAX_EVENTS:
                events.append((sent, start, perf_counter()))
            else:
                self.buffer.count_dropped()
            if self.buffer._thread is None:
                self.buffer._start()

    def note_exception(self, sender: Flask, exception: BaseException, **extra: Any) -> None:
        """``got_request_exception`` receiver: keep the rule of a request that raised."""
        request.environ[_RULE] = request.url_rule


def install(app: Flask, buffer: Buffer) -> None:
    """Count every response of ``app`` into ``buffer``."""
    middleware = CaptureMiddleware(app.wsgi_app, buffer)
    app.wsgi_app = middleware  # type: ignore[method-assign]
    # The signal only fires for unhandled exceptions: free on the normal path.
    got_request_exception.connect(middleware.note_exception, app)
