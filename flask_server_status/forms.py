"""The one form that validates an operator's change to a route.

The admin's edit view and the configure API both validate with
:class:`RouteForm`, so they accept the same values and answer with the same
messages.
"""

from __future__ import annotations

from typing import Any

from wtforms import BooleanField, Form, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

NAME_MAX = 100
DOC_MAX = 2000


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


class RouteForm(Form):
    """Name, description and visibility of a route."""

    name = StringField(
        "Name",
        filters=[_strip],
        validators=[
            DataRequired(message="The name cannot be empty."),
            Length(max=NAME_MAX, message=f"The name can be at most {NAME_MAX} characters."),
        ],
        description="Shown on the status page instead of the rule.",
    )
    doc = TextAreaField(
        "Description",
        filters=[_strip],
        validators=[
            Optional(),
            Length(max=DOC_MAX, message=f"The description can be at most {DOC_MAX} characters."),
        ],
        description="Shown under the name on the status page.",
    )
    hidden = BooleanField("Hidden", description="Hidden routes are not shown on the page.")


def validate_changes(changes: dict[str, Any], current: dict[str, Any]) -> dict[str, list[str]]:
    """Validate ``changes`` over the route's ``current`` values with :class:`RouteForm`.

    :returns: field name -> error messages; empty when valid. Only fields in
        ``changes`` are reported.
    """
    form = RouteForm(data={**current, **changes})
    form.validate()
    return {name: list(errors) for name, errors in form.errors.items() if name in changes}
