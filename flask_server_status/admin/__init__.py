"""Flask-Admin views (placeholder until the admin issue lands)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask
    from flask_admin import Admin

    from ..extension import StatusState


def add_views(admin: Admin, app: Flask, state: StatusState) -> None:
    return None
