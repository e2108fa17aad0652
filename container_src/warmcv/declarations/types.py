"""Typed hyperparameter declarations that both validate the container's string inputs and emit tuner ranges.

One object per hyperparameter carries everything every consumer needs: the container parses and
range-checks the strings SageMaker hands it, the SageMaker launcher turns the default tuning range
into `ParameterRanges`, and the local tuner turns it into an Optuna distribution. Keeping this in one
place is what stops a range or a type from drifting between the tuner and the code that trains.
(Same idea as `sagemaker_algorithm_toolkit` in aws/sagemaker-xgboost-container.)
"""

from __future__ import annotations

import json
import math
import numbers
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import numpy as np

Scaling = Literal["Auto", "Linear", "Logarithmic", "ReverseLogarithmic"]


class HyperparameterValueError(ValueError):
    """One hyperparameter's value is wrong; the message names the value and what is allowed."""


@dataclass(frozen=True)
class Interval:
    """A closed, open or half-open interval; `None` means unbounded on that side."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: float) -> bool:
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        if self.high is not None and (value > self.high or (self.high_open and value == self.high)):
            return False
        return True

    def __str__(self) -> str:
        if self.low is not None and self.high is not None:
            left = "(" if self.low_open else "["
            right = ")" if self.high_open else "]"
            return f"{left}{_num(self.low)}, {_num(self.high)}{right}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {_num(self.low)}"
        if self.high is not None:
            return f"{'<' if self.high_open else '<='} {_num(self.high)}"
        return "any value"


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(float(value))


@dataclass(frozen=True)
class TuningRange:
    """The default search range of a tunable hyperparameter (overridable by the launcher or CLI)."""

    low: float
    high: float
    scaling: Scaling = "Auto"

    @property
    def log(self) -> bool:
        return self.scaling == "Logarithmic"


# A decimal number as people write one: ASCII digits, an optional fraction and exponent. Python's int() and
# float() also take '31_0' (as 310), digits of other scripts, 'infinity' and 'nan'; a user means none of those.
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# Decimal exponents beyond this are out of every declared range; converting them to int would take forever.
_MAX_DIGITS = 30


def decimal_text(text: str) -> Decimal | None:
    """`text` as an exact decimal number, or None unless it is written as one."""
    return Decimal(text) if _DECIMAL.fullmatch(text) else None


def shown(raw: Any) -> str:
    """A value as the user wrote it: numpy's scalars print as `np.int64(1)`, which nobody wrote."""
    if isinstance(raw, np.generic):
        raw = raw.item()
    return repr(raw)


def _unquote(raw: str) -> str:
    """Undo JSON quoting: the SDK and the toolkit sometimes send `"\\"binary\\""` for `binary`."""
    text = raw.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        try:
            decoded = json.loads(text)
        except json.JSONDecodeError:
            return text
        if isinstance(decoded, str):
            return decoded.strip()
    return text


@dataclass(frozen=True, kw_only=True)
class Hyperparameter(ABC):
    """Base declaration. `lightgbm=True` means the value is passed to LightGBM under `name`."""

    name: str
    help: str
    default: Any
    lightgbm: bool = False
    dataset_level: bool = False  # changes how LightGBM bins the data: a cached Dataset must be rebuilt

    @abstractmethod
    def parse(self, raw: Any) -> Any:
        """Typed value from a string (as in hyperparameters.json) or an already typed value."""

    @abstractmethod
    def allowed(self) -> str:
        """What values are allowed, for error messages and help text."""

    def format(self, value: Any) -> str:
        """The string form SageMaker hyperparameters need; `parse(format(v)) == v`."""
        return str(value)

    def _fail(self, raw: Any, problem: str) -> HyperparameterValueError:
        return HyperparameterValueError(
            f"hyperparameter {self.name}={shown(raw)}: {problem} (allowed: {self.allowed()})"
        )


@dataclass(frozen=True, kw_only=True)
class NumericHyperparameter(Hyperparameter):
    valid: Interval = Interval()
    tuning: TuningRange | None = None
    # Search a few values instead of a range (e.g. dataset-level parameters, so cached Datasets get reused).
    tuning_choices: tuple[float, ...] | None = None

    @property
    def tunable(self) -> bool:
        return self.tuning is not None or self.tuning_choices is not None

    def _check_range(self, raw: Any, value: float) -> None:
        if value not in self.valid:
            raise self._fail(raw, "out of range")

    def check_tuning_range(self, tuning: TuningRange) -> None:
        """A tuning range must lie inside the valid range, and log scaling needs a positive low end."""
        for end in (tuning.low, tuning.high):
            if end not in self.valid:
                raise HyperparameterValueError(
                    f"tuning range of {self.name} [{_num(tuning.low)}, {_num(tuning.high)}] leaves the "
                    f"valid range {self.valid}"
                )
        if tuning.low >= tuning.high:
            raise HyperparameterValueError(
                f"tuning range of {self.name}: low {_num(tuning.low)} must be below high {_num(tuning.high)}"
            )
        # SageMaker's rules (API reference, ContinuousParameterRange and IntegerParameterRange; developer
        # guide, automatic-model-tuning-define-ranges "Hyperparameter scaling types"): logarithmic scaling
        # only for ranges of values above 0; reverse logarithmic only for continuous ranges entirely
        # within 0 <= x < 1.0, never for integers.
        if tuning.scaling == "Logarithmic" and tuning.low <= 0:
            raise HyperparameterValueError(
                f"tuning range of {self.name}: Logarithmic scaling needs a low end above 0, got {_num(tuning.low)}"
            )
        if tuning.scaling == "ReverseLogarithmic":
            if isinstance(self, IntegerHyperparameter):
                raise HyperparameterValueError(
                    f"tuning range of {self.name}: ReverseLogarithmic scaling is for continuous ranges only "
                    "(SageMaker refuses it for integer hyperparameters); use log or linear")
            if not (0 <= tuning.low and tuning.high < 1):
                raise HyperparameterValueError(
                    f"tuning range of {self.name}: ReverseLogarithmic scaling needs a range within 0 <= x < 1, "
                    f"got [{_num(tuning.low)}, {_num(tuning.high)}]")


@dataclass(frozen=True, kw_only=True)
class IntegerHyperparameter(NumericHyperparameter):
    """An integer with both ends declared: LightGBM's `type = int` is a C++ int, and a larger value wraps."""

    def __post_init__(self) -> None:
        if self.valid.low is None or self.valid.high is None:
            raise ValueError(f"integer hyperparameter {self.name} needs both ends of its valid range")

    def parse(self, raw: Any) -> int:
        if isinstance(raw, bool):
            raise self._fail(raw, "is a boolean, not an integer")
        if isinstance(raw, numbers.Integral):
            value = int(raw)
        elif isinstance(raw, numbers.Real):
            if not math.isfinite(raw) or not float(raw).is_integer():
                raise self._fail(raw, "is not an integer")
            value = int(float(raw))
        else:
            number = decimal_text(_unquote(str(raw)))
            if number is None or number != number.to_integral_value():
                raise self._fail(raw, "is not an integer")
            if number.adjusted() > _MAX_DIGITS:
                raise self._fail(raw, "out of range")
            value = int(number)
        self._check_range(raw, value)
        return value

    def allowed(self) -> str:
        return f"an integer in {self.valid}"


@dataclass(frozen=True, kw_only=True)
class ContinuousHyperparameter(NumericHyperparameter):
    def parse(self, raw: Any) -> float:
        if isinstance(raw, bool):
            raise self._fail(raw, "is a boolean, not a number")
        if isinstance(raw, numbers.Real):
            value = float(raw)
        else:
            text = _unquote(str(raw))
            if decimal_text(text) is None:
                raise self._fail(raw, "is not a finite number" if text.lower().lstrip("+-") in _NON_FINITE
                                 else "is not a number")
            value = float(text)
        if not math.isfinite(value):
            raise self._fail(raw, "is not a finite number")
        self._check_range(raw, value)
        return value

    def format(self, value: Any) -> str:
        return repr(float(value))

    def allowed(self) -> str:
        return f"a number in {self.valid}"


_NON_FINITE = {"nan", "inf", "infinity"}


@dataclass(frozen=True, kw_only=True)
class CategoricalHyperparameter(Hyperparameter):
    choices: tuple[str, ...]
    tuning_choices: tuple[str, ...] | None = None

    @property
    def tunable(self) -> bool:
        return self.tuning_choices is not None

    def parse(self, raw: Any) -> str:
        text = _unquote(str(raw))
        for choice in self.choices:
            if text.lower() == choice.lower():
                return choice
        raise self._fail(raw, "is not one of the choices")

    def allowed(self) -> str:
        return "one of " + ", ".join(self.choices)


@dataclass(frozen=True, kw_only=True)
class TextHyperparameter(Hyperparameter):
    """Free text within a pattern and a length (an instance type, an S3 URI, a search space); "" is unset."""

    pattern: str
    max_length: int = 2500  # SageMaker's limit on a hyperparameter value (CreateTrainingJob HyperParameters)
    example: str = ""
    tunable = False

    def parse(self, raw: Any) -> str:
        import re

        text = _unquote(str(raw))
        if len(text) > self.max_length:
            raise self._fail(raw, f"has {len(text)} characters, more than {self.max_length}")
        if text and not re.fullmatch(self.pattern, text):
            raise self._fail(raw, "does not have the expected form")
        return text

    def allowed(self) -> str:
        return f"empty, or text like {self.example!r}" if self.example else f"text matching {self.pattern}"


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


@dataclass(frozen=True, kw_only=True)
class BooleanHyperparameter(Hyperparameter):
    tunable = False

    def parse(self, raw: Any) -> bool:
        if isinstance(raw, bool):
            return raw
        text = _unquote(str(raw)).lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise self._fail(raw, "is not a boolean")

    def format(self, value: Any) -> str:
        return "true" if value else "false"

    def allowed(self) -> str:
        return "true or false"


ALL_FOLDS = "all"


@dataclass(frozen=True, kw_only=True)
class FoldHyperparameter(Hyperparameter):
    """`all` (train on the full prepared set) or a fold index; the data's fold count is checked later."""

    max_index: int
    tunable = False

    def parse(self, raw: Any) -> int | str:
        if isinstance(raw, str) and _unquote(raw).lower() == ALL_FOLDS:
            return ALL_FOLDS
        if isinstance(raw, bool):
            raise self._fail(raw, "is a boolean")
        if isinstance(raw, numbers.Integral):
            value = int(raw)
        else:
            text = _unquote(str(raw))
            if not re.fullmatch(r"[+-]?[0-9]+", text):
                raise self._fail(raw, "is neither 'all' nor a fold index")
            value = int(text)
        if value < 0:
            raise self._fail(raw, "is negative")
        if value > self.max_index:
            raise self._fail(raw, "out of range")
        return value

    def allowed(self) -> str:
        return f"'all' or a fold index 0..k-1, at most {self.max_index}"
