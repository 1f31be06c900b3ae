"""The request hooks: rule, status and latency of each response into the buffer.

This is everything a request pays for. It touches no database and no file;
the flusher does the rest later. Requests that matched no URL rule are
counted under one key (:data:`~.models.UNMATCHED_RULE`), so random paths
cannot grow the buffer.
"""

from __future__ import annotations

from time import perf_counter

from flask import Flask, Response, request

from .buffer import Buffer
from .models import UNMATCHED_RULE

_START = "flask_server_status.start"


def install(app: Flask, buffer: Buffer) -> None:
    """Register the hooks that count every response of ``app`` into ``buffer``."""
    add = buffer.add

    def start_timer() -> None:
        request.environ[_START] = perf_counter()

    def count_response(response: Response) -> Response:
        rule = request.url_rule
        add(
            UNMATCHED_RULE if rule is None else rule.rule,
            response.status_code,
            perf_counter() - request.environ.get(_START, perf_counter()),
        )
        return response

    def count_propagated_error(error: BaseException | None) -> None:
        # An unhandled exception normally becomes a 500 response that
        # count_response sees. When Flask propagates it instead (testing or
        # debug mode, PROPAGATE_EXCEPTIONS) no response is made: count it here.
        if error is None or not _propagates(app):
            return
        rule = request.url_rule
        add(
            UNMATCHED_RULE if rule is None else rule.rule,
            500,
            perf_counter() - request.environ.get(_START, perf_counter()),
        )

    app.before_request(start_timer)
    app.after_request(count_response)
    app.teardown_request(count_propagated_error)


def _propagates(app: Flask) -> bool:
    propagate = app.config.get("PROPAGATE_EXCEPTIONS")
    if propagate is None:
        return app.testing or app.debug
    return bool(propagate)
