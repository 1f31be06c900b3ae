"""Who may open the Status views of the admin.

Two gates, both checked on every request to one of our views:

1. the host's own rule: our views are accessible exactly when the admin's
   index view is (``admin.index_view.is_accessible()``), so an admin the host
   protects protects these views too;
2. optionally, HTTP Basic auth (Flask-HTTPAuth) against
   ``FLASK_STATUS_ADMIN_USERNAME`` and ``FLASK_STATUS_ADMIN_PASSWORD_HASH``
   (a :func:`werkzeug.security.generate_password_hash` hash).
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Any

from flask import abort, has_request_context, request
from flask_httpauth import HTTPBasicAuth
from werkzeug.security import check_password_hash

from ..state import get_state

if TYPE_CHECKING:
    from flask.typing import ResponseReturnValue

    from ..config import Settings

REALM = "flask-server-status admin"


def basic_auth_configured(settings: Settings) -> bool:
    """Whether the config asks for the extra Basic-auth gate."""
    return bool(settings.admin_username and settings.admin_password_hash)


def make_basic_auth() -> HTTPBasicAuth:
    """An :class:`HTTPBasicAuth` that checks the current app's admin credentials.

    The credentials are read from the current app's settings at request time,
    so one object serves every app the views are registered on.
    """
    auth = HTTPBasicAuth(realm=REALM)

    @auth.verify_password
    def verify(username: str, password: str) -> str | None:
        settings = get_state().settings
        if not basic_auth_configured(settings) or not username or not password:
            return None
        expected = str(settings.admin_username)
        # Both checks always run, so a wrong user name takes as long as a
        # wrong password and the timing tells nothing about which was wrong.
        name_ok = hmac.compare_digest(username.encode(), expected.encode())
        password_ok = check_password_hash(str(settings.admin_password_hash), password)
        return username if name_ok and password_ok else None

    @auth.error_handler
    def refused(status: int) -> tuple[str, int]:
        if status == 401:
            return "Authentication required for the status admin.", 401
        return "Forbidden.", status

    return auth


class StatusAccessMixin:
    """``is_accessible`` / ``inaccessible_callback`` for the Status views.

    Mixed into the ``ModelView`` subclasses; ``self.admin`` is the
    :class:`flask_admin.Admin` the view was registered with.
    """

    admin: Any
    endpoint: str
    basic_auth: HTTPBasicAuth

    def _index_accessible(self) -> bool:
        return bool(self.admin.index_view.is_accessible())

    def _basic_auth_passed(self) -> bool:
        if not basic_auth_configured(get_state().settings):
            return True
        auth = self.basic_auth
        user = auth.authenticate(auth.get_auth(), None)
        return user not in (None, False)

    def is_accessible(self) -> bool:
        """True exactly when the admin's index view is, and Basic auth (if set up) passed.

        Asked from another page (Flask-Admin building its menu), the Basic-auth
        part is left to the view itself: browsers send Basic credentials only
        below the path that asked for them, so requiring them here would hide
        the Status menu from every page but ours. Opening the view still asks.
        """
        if not self._index_accessible():
            return False
        if has_request_context() and request.blueprint != self.endpoint:
            return True
        return self._basic_auth_passed()

    def inaccessible_callback(self, name: Any, **kwargs: Any) -> ResponseReturnValue:
        """Refuse with the host's answer (403 by default), or 401 asking for credentials."""
        if not self._index_accessible():
            # The host's own refusal (a redirect to its login page, say) when
            # it has one; Flask-Admin's default is a plain 403.
            response: ResponseReturnValue | None = self.admin.index_view.inaccessible_callback(name)
            return response if response is not None else abort(403)
        refusal: ResponseReturnValue = self.basic_auth.auth_error_callback(401)
        return refusal
