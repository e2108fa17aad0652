"""Which feature a user most likely meant by a column name or JSON key that is not one.

Serve matches names exactly as training read them (a model trained on `' x2'` needs `' x2'`), so a
name that differs only in case, surrounding spaces or a typo must not pass silently as "some other
column": these helpers find the feature it was meant to be, for a message that says so.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

# difflib's similarity ratio above which two names count as one typo apart ('sizee' -> 'size' is 0.89).
CLOSE_SPELLING = 0.8


def _folded(name: str) -> str:
    return " ".join(name.split()).casefold()


def same_name_but_spelling(name: str, features: Sequence[str]) -> str | None:
    """The feature `name` equals, or equals apart from case and surrounding or repeated spaces."""
    if name in features:
        return name
    folded = _folded(name)
    return next((feature for feature in features if _folded(feature) == folded), None)


def meant_feature(name: str, features: Sequence[str]) -> str | None:
    """The feature `name` is, or most likely was meant to be (same name but spelling, or a close typo)."""
    exact = same_name_but_spelling(name, features)
    if exact is not None:
        return exact
    close = difflib.get_close_matches(_folded(name), [_folded(f) for f in features], n=1, cutoff=CLOSE_SPELLING)
    if not close:
        return None
    return next(feature for feature in features if _folded(feature) == close[0])


def misspellings(names: Iterable[str], missing: Sequence[str]) -> dict[str, str]:
    """For each missing feature, the given name that most likely meant it (names that are features excluded)."""
    found: dict[str, str] = {}
    for name in names:
        if name in missing:
            continue
        meant = meant_feature(name, missing)
        if meant is not None and meant not in found:
            found[meant] = name
    return found


def describe_misspellings(found: dict[str, str]) -> str:
    return "; ".join(f"{name!r} is not {feature!r}" for feature, name in found.items())
