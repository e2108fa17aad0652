"""Plain-text tables and number formats for `warmcv plan` and `warmcv simulate`."""

from __future__ import annotations

import re
from collections.abc import Sequence

from warmcv.errors import UserInputError

_UNITS = {"": 1.0, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "hr": 3600.0}


def parse_duration(text: str, name: str = "duration") -> float:
    """`180`, `180s`, `3m`, `3min`, `1.5h` -> seconds."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-z]*)\s*", str(text).lower())
    if not match or match.group(2) not in _UNITS:
        raise UserInputError(f"{name} {text!r}: expected seconds, or a number with s, m/min or h (e.g. 180, 3m, 1.5h)")
    return float(match.group(1)) * _UNITS[match.group(2)]


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h"


def short(seconds: float) -> str:
    """Seconds in the unit a reader wants: 4.1 s, 3.2 min, 4.05 h."""
    if abs(seconds) < 120:
        return f"{seconds:.1f} s"
    if abs(seconds) < 7200:
        return f"{seconds / 60:.1f} min"
    return hours(seconds)


def percent(share: float | None) -> str:
    return "-" if share is None else f"{100 * share:.1f} %"


def number(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.{digits}f}"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned first column, right-aligned others, a rule under the header."""
    columns = [header, *rows]
    widths = [max(len(str(row[i])) for row in columns) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        cells = [str(row[0]).ljust(widths[0])] + [str(c).rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        return "  ".join(cells).rstrip()

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *(line(r) for r in rows)])


def markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """The same table for docs (GitHub-flavoured Markdown)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
