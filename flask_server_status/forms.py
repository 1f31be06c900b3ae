"""The one form that validates an operator's change to a route.

The admin's edit view and the configure API both validate with
:class:`RouteForm`, so they accept the same values and answer with the same
messages.
"""

from __future__ import annotations

import re
from typing import Any

from wtforms import BooleanField, Field, Form, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, StopValidation, ValidationError

NAME_MAX = 100
DOC_MAX = 2000


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


# A name is one line of text; a description may have line breaks and tabs.
# NUL and lone surrogates are refused everywhere: PostgreSQL cannot store NUL
# and no database driver can encode a surrogate, so letting them through would
# turn a typo into a database error.
_NAME_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_DOC_FORBIDDEN = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


class _Printable:
    """Refuse characters that cannot be shown or stored (see the patterns above)."""

    def __init__(self, pattern: re.Pattern[str], message: str) -> None:
        self.pattern = pattern
        self.message = message

    def __call__(self, form: Form, field: Field) -> None:
        if isinstance(field.data, str) and self.pattern.search(field.data):
            raise ValidationError(self.message)


class _OptionalText:
    """Stop validating an empty (or blank) text field.

    WTForms' ``Optional`` looks at ``raw_data``, which only form posts fill;
    :func:`validate_changes` passes ``data=``, and there ``Optional`` skipped
    every later validator, letting over-long descriptions through.
    """

    field_flags = {"optional": True}

    def __call__(self, form: Form, field: Field) -> None:
        if not (field.data or "").strip():
            field.errors[:] = []
            raise StopValidation()


class RouteForm(Form):
    """Name, description and visibility of a route."""

    name = StringField(
        "Name",
        filters=[_strip],
        validators=[
            DataRequired(message="The name cannot be empty."),
            Length(max=NAME_MAX, message=f"The name can be at most {NAME_MAX} characters."),
            _Printable(_NAME_FORBIDDEN, "The name cannot contain control characters."),
        ],
        description="Shown on the status page instead of the rule.",
    )
    doc = TextAreaField(
        "Description",
        filters=[_strip],
        validators=[
            _OptionalText(),
            Length(max=DOC_MAX, message=f"The description can be at most {DOC_MAX} characters."),
            _Printable(_DOC_FORBIDDEN, "The description cannot contain control characters."),
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
