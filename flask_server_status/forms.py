"""The one form that validates an operator's change to a route.

The admin's edit view and the configure API both validate with
:class:`RouteForm`, so they accept the same values and answer with the same
messages.
"""

from __future__ import annotations

import math
import re
from typing import Any

from wtforms import BooleanField, Field, Form, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, StopValidation, ValidationError
from wtforms.widgets import TextInput

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


#: Characters that change how the text around them reads without showing
#: themselves: bidi embeddings, overrides and isolates (U+202A-U+202E,
#: U+2066-U+2069), zero-width spaces, joiners and direction marks
#: (U+200B-U+200F), the word joiner (U+2060) and the BOM (U+FEFF).
#: "Pay\u202emoc.live" displays as "Payevil.com"; an operator reading the
#: list could not tell.
INVISIBLE = re.compile(r"[\u200b-\u200f\u202a-\u202e\u2060\u2066-\u2069\ufeff]")


class NoInvisible:
    """Refuse invisible and text-direction characters, naming the first one found.

    The one rule for names and descriptions; the admin form, the configure
    API and the CLI all validate through :class:`RouteForm`, so all three
    refuse the same text with the same message.

    :param what: the field as the message calls it ("The name").
    """

    def __init__(self, what: str) -> None:
        self.what = what

    def __call__(self, form: Form, field: Field) -> None:
        found = INVISIBLE.search(field.data) if isinstance(field.data, str) else None
        if found is not None:
            raise ValidationError(
                f"{self.what} cannot contain invisible or text-direction characters"
                f" (found U+{ord(found.group()):04X})."
            )


class _OptionalText:
    """Stop validating an empty (or blank) text field.

    WTForms' ``Optional`` looks at ``raw_data``, which only form posts fill;
    :func:`validate_changes` passes ``data=``, and there ``Optional`` skipped
    every later validator, letting over-long descriptions through.
    """

    field_flags = {"optional": True}

    def __call__(self, form: Form, field: Field) -> None:
        if not (field.data or "").strip():
            # As wtforms.validators.Optional does; the stubs type errors as a Sequence.
            field.errors[:] = []  # type: ignore[index]
            raise StopValidation()


# -- a route's own verdict settings (NULL: the global setting) ---------------------------

#: Codes a route may count as failures (every 5xx always fails; listing one is harmless).
CODE_MIN, CODE_MAX = 400, 599
#: Highest latency threshold, as for ``FLASK_STATUS_LATENCY_THRESHOLD_MS``.
LATENCY_MAX_MS = 600_000
SLO_MESSAGE = "The SLO target must be a percentage between 0 and 100, both excluded (e.g. 99.9)."
#: Words that mean "no value of its own: the global setting" in the admin and the CLI.
CLEAR_WORDS = ("", "none", "default")
#: The word for an empty code list: no 4xx code fails on this route, only 5xx.
ONLY_5XX = "5xx"


def parse_codes(text: str) -> list[int] | None:
    """Failure codes as an operator types them: ``"404, 429"`` -> ``[404, 429]``.

    Blank, ``none`` or ``default``: None (the global set); ``5xx``: ``[]`` (no 4xx
    code fails). Bounds are checked by the form, not here.

    >>> parse_codes("404,429 "), parse_codes("none"), parse_codes("5xx")
    ([404, 429], None, [])

    :raises ValueError: for a part that is not a whole number.
    """
    text = text.strip().lower()
    if text in CLEAR_WORDS:
        return None
    if text == ONLY_5XX:
        return []
    codes = []
    for part in text.replace(",", " ").split():
        if not part.isascii() or not part.isdigit():
            raise ValueError(f"{part!r} is not a status code; give codes such as 404, 429.")
        codes.append(int(part))
    return codes


def parse_number(text: str) -> float | None:
    """A number as an operator types it; blank, ``none`` or ``default``: None.

    :raises ValueError: for anything else that is not a finite number.
    """
    text = text.strip().lower()
    if text in CLEAR_WORDS:
        return None
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number.") from None
    if not math.isfinite(number):
        raise ValueError(f"{text!r} is not a finite number.")
    return number


class CodesField(Field):
    """A list of status codes, typed as ``404, 429`` (blank: the global set)."""

    widget = TextInput()
    data: list[int] | None

    def _value(self) -> str:
        if self.data is None:
            return ""
        return ", ".join(str(code) for code in self.data) if self.data else ONLY_5XX

    def process_formdata(self, valuelist: list[Any]) -> None:
        if valuelist:
            self.data = parse_codes(str(valuelist[0]))


class OptionalNumberField(Field):
    """A number, or blank for the global setting."""

    widget = TextInput()
    data: float | None

    def _value(self) -> str:
        return "" if self.data is None else f"{self.data:g}"

    def process_formdata(self, valuelist: list[Any]) -> None:
        if valuelist:
            self.data = parse_number(str(valuelist[0]))


class _Codes:
    """Every code between :data:`CODE_MIN` and :data:`CODE_MAX`."""

    def __call__(self, form: Form, field: Field) -> None:
        wrong = [code for code in field.data or () if not CODE_MIN <= code <= CODE_MAX]
        if wrong:
            raise ValidationError(
                f"Failure codes must be between {CODE_MIN} and {CODE_MAX}"
                f" (not {', '.join(str(code) for code in wrong[:5])})."
            )


class _Within:
    """A number above ``low`` and up to ``high`` (below it when ``high_open``); None passes."""

    def __init__(self, low: float, high: float, message: str, high_open: bool = False) -> None:
        self.low, self.high, self.message, self.high_open = low, high, message, high_open

    def __call__(self, form: Form, field: Field) -> None:
        value = field.data
        if value is None:
            return
        # Written so that NaN (which json.loads accepts) fails every comparison.
        inside = self.low < value < self.high if self.high_open else self.low < value <= self.high
        if not inside:
            raise ValidationError(self.message)


class RouteForm(Form):
    """Name, description and visibility of a route, and its own verdict settings."""

    name = StringField(
        "Name",
        filters=[_strip],
        validators=[
            DataRequired(message="The name cannot be empty."),
            Length(max=NAME_MAX, message=f"The name can be at most {NAME_MAX} characters."),
            _Printable(_NAME_FORBIDDEN, "The name cannot contain control characters."),
            NoInvisible("The name"),
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
            NoInvisible("The description"),
        ],
        description="Shown under the name on the status page.",
    )
    hidden = BooleanField("Hidden", description="Hidden routes are not shown on the page.")
    failure_codes = CodesField(
        "Failure codes",
        validators=[_Codes()],
        description="4xx codes that count as failures on this route, e.g. 404, 429 (every"
        " 5xx always does; 5xx: no 4xx fails). Blank: the global setting. Counts already"
        " written keep the classification they had.",
    )
    latency_threshold_ms = OptionalNumberField(
        "Latency threshold (ms)",
        validators=[
            _Within(
                0,
                LATENCY_MAX_MS,
                f"The latency threshold must be more than 0 and at most {LATENCY_MAX_MS} ms.",
            )
        ],
        description="A p95 above this over the status window makes the route degraded."
        " Blank: the global setting.",
    )
    slo_target = OptionalNumberField(
        "SLO target (%)",
        validators=[
            _Within(0, 100, SLO_MESSAGE, high_open=True),
        ],
        description="Service level objective, e.g. 99.9: the page shows the error budget"
        " left. Blank: the global setting.",
    )


def validate_changes(changes: dict[str, Any], current: dict[str, Any]) -> dict[str, list[str]]:
    """Validate ``changes`` over the route's ``current`` values with :class:`RouteForm`.

    :returns: field name -> error messages; empty when valid. Only fields in
        ``changes`` are reported.
    """
    form = RouteForm(data={**current, **changes})
    form.validate()
    return {name: list(errors) for name, errors in form.errors.items() if name in changes}
