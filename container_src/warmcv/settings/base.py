"""The base of every settings model: strict about unknown keys, and failing as a `UserInputError`.

pydantic's `ValidationError` lists every problem with its location; users of warmcv get the same
list as one message, each problem naming its key, the value given and what is allowed, from the
CLI, the Python API, a run.json or a launcher TOML alike.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, ValidationError

from warmcv.errors import UserInputError


def _location(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc)


def describe_problem(error: Mapping[str, Any], known: Iterable[str] = ()) -> str:
    """One of pydantic's errors as a user reads it: `<key> = <value>: <what is allowed>`."""
    key, kind, value, ctx = _location(error["loc"]), error["type"], error.get("input"), error.get("ctx") or {}
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(str(error["loc"][-1]), list(known), n=1)
        return f"{key}: unknown key" + (f" (did you mean {close[0]!r}?)" if close else "")
    if kind == "missing":
        return f"{key}: required"
    shown = repr(value)
    if kind == "literal_error":
        return f"{key} = {shown}: one of {ctx.get('expected', '')}".replace("' or '", "', '")
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        bound = {"greater_than_equal": "at least", "greater_than": "more than", "less_than_equal": "at most",
                 "less_than": "less than"}[kind]
        limit = next(iter(ctx.values()), "")
        return f"{key} = {shown}: must be {bound} {limit}"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"{key} = {shown}: expected an integer"
    if kind in ("float_parsing", "float_type"):
        return f"{key} = {shown}: expected a number"
    if kind == "finite_number":
        return f"{key} = {shown}: expected a finite number"
    if kind in ("bool_parsing", "bool_type"):
        return f"{key} = {shown}: expected true or false"
    if kind in ("string_type",):
        return f"{key} = {shown}: expected a string"
    message = str(error.get("msg", kind))
    return f"{key} = {shown}: {message[0].lower() + message[1:] if message else kind}"


def problems_of(error: ValidationError, known: Iterable[str] = ()) -> list[str]:
    return [describe_problem(e, known) for e in error.errors(include_url=False)]


class SettingsError(UserInputError):
    """Settings that failed validation; `problems` lists each one (`key = value: what is allowed`)."""

    def __init__(self, what: str, problems: list[str]):
        super().__init__(f"invalid {what}: " + "; ".join(problems))
        self.what = what
        self.problems = problems


class Settings(BaseModel):
    """Frozen, unknown keys refused, every failure a `UserInputError` (also from the constructor)."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)
    # What the settings are, as an error message names them ("invalid run settings: ...").
    what: ClassVar[str] = "settings"

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as error:
            raise SettingsError(self.what, problems_of(error, type(self).model_fields)) from None

    @classmethod
    def parse(cls, data: Mapping[str, Any], where: str) -> Self:
        """Validate `data` read from `where` (a file, a config table): the message names it."""
        try:
            return cls.model_validate(dict(data))
        except SettingsError as error:
            raise SettingsError(f"{cls.what} in {where}", error.problems) from None

    def replaced(self, **changes: Any) -> Self:
        """A validated copy with `changes` (pydantic's model_copy does not validate)."""
        return type(self)(**{**self.model_dump(), **changes})
