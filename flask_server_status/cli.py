"""``flask status ...`` commands (placeholder until the CLI issue lands)."""

from __future__ import annotations

from flask.cli import AppGroup

status_cli = AppGroup("status", help="flask-server-status: routes, flushes, retention.")
