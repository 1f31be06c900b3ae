"""The public status page blueprint (placeholder until the page issue lands)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Blueprint

if TYPE_CHECKING:
    from .extension import StatusState


def make_blueprint(state: StatusState) -> Blueprint:
    return Blueprint("flask_status", __name__)
