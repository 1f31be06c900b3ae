"""flask-server-status: a public status page from a Flask app's real traffic.

::

    from flask_server_status import FlaskStatus

    status = FlaskStatus(app, admin=admin)
"""

from __future__ import annotations

from .extension import FlaskStatus
from .state import StatusState, get_state

__version__ = "1.0.0.dev0"
__all__ = ["FlaskStatus", "StatusState", "__version__", "get_state"]
