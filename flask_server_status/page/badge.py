"""Shields-style SVG badges whose boxes fit their text.

shields.io measures each label with a table of Verdana 11px advance widths
(its ``anafanafo`` package) and pads the text by the same amount on both
sides. The table below holds Verdana's advance widths at 11px for ASCII
(from the font's ``hmtx`` table: units per em 2048, so width = units * 11 /
2048); any other character counts as a wide letter, so a badge is never
narrower than its text.
"""

from __future__ import annotations

from flask import render_template

#: Horizontal padding on each side of a text, in pixels (shields.io uses 5 + 5).
PADDING = 6
#: Width assumed for a character missing from :data:`_WIDTHS` (an "M"-like letter).
FALLBACK_WIDTH = 8.5

_UNITS = {
    " ": 720, "!": 809, '"': 941, "#": 1697, "$": 1302, "%": 2219, "&": 1485, "'": 553,
    "(": 910, ")": 910, "*": 1302, "+": 1697, ",": 745, "-": 924, ".": 745, "/": 1313,
    "0": 1302, "1": 1302, "2": 1302, "3": 1302, "4": 1302, "5": 1302, "6": 1302,
    "7": 1302, "8": 1302, "9": 1302, ":": 931, ";": 931, "<": 1697, "=": 1697, ">": 1697,
    "?": 1114, "@": 2048, "A": 1401, "B": 1405, "C": 1430, "D": 1579, "E": 1294,
    "F": 1178, "G": 1587, "H": 1540, "I": 862, "J": 921, "K": 1423, "L": 1144, "M": 1726,
    "N": 1532, "O": 1612, "P": 1235, "Q": 1612, "R": 1440, "S": 1401, "T": 1233,
    "U": 1499, "V": 1401, "W": 2025, "X": 1403, "Y": 1231, "Z": 1399, "[": 910, "\\": 1313,
    "]": 910, "^": 1697, "_": 1302, "`": 1302, "a": 1229, "b": 1276, "c": 1067, "d": 1276,
    "e": 1220, "f": 720, "g": 1276, "h": 1296, "i": 562, "j": 669, "k": 1212, "l": 562,
    "m": 1992, "n": 1296, "o": 1243, "p": 1276, "q": 1276, "r": 874, "s": 1067, "t": 807,
    "u": 1296, "v": 1212, "w": 1675, "x": 1212, "y": 1212, "z": 1051, "{": 1300,
    "|": 920, "}": 1300, "~": 1697, "\u00b7": 745,
}  # fmt: skip
_WIDTHS = {char: units * 11 / 2048 for char, units in _UNITS.items()}


def text_width(text: str) -> float:
    """The width in pixels of ``text`` set in Verdana 11px."""
    return sum(_WIDTHS.get(char, FALLBACK_WIDTH) for char in text)


def box_width(text: str) -> int:
    """The width of the box around ``text``: its width plus padding on both sides."""
    return round(text_width(text)) + 2 * PADDING


def badge_svg(label: str, message: str, colour: str) -> str:
    """A flat badge, ``label`` on grey and ``message`` on ``colour``; both escaped."""
    left, right = box_width(label), box_width(message)
    return render_template(
        "flask_status/badge.svg",
        label=label,
        message=message,
        colour=colour,
        left=left,
        right=right,
        width=left + right,
        label_width=round(text_width(label)),
        message_width=round(text_width(message)),
    )
