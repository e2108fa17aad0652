"""Every public name of `warmcv` is documented and typed, as a library's API must be."""

from __future__ import annotations

import inspect

import pytest

import warmcv


@pytest.mark.parametrize("name", warmcv.__all__)
def test_public_name_has_a_docstring_and_type_hints(name: str) -> None:
    obj = getattr(warmcv, name)
    assert inspect.getdoc(obj), f"warmcv.{name} has no docstring"
    functions = [obj] if inspect.isfunction(obj) else [
        member for member_name, member in vars(obj).items()
        if inspect.isfunction(member) and not member_name.startswith("_")] if inspect.isclass(obj) else []
    for function in functions:
        signature = inspect.signature(function)
        missing = [p for p in signature.parameters.values()
                   if p.name not in ("self", "cls") and p.annotation is inspect.Parameter.empty]
        assert not missing, f"warmcv.{name}: {function.__name__} lacks type hints for {missing}"
        assert signature.return_annotation is not inspect.Signature.empty, f"{function.__qualname__} lacks a return type"


def test_every_public_method_of_the_api_classes_is_documented() -> None:
    for cls in (warmcv.TuneResult, warmcv.CrossValidationResult, warmcv.Model):
        for member_name, member in vars(cls).items():
            if member_name.startswith("_"):
                continue
            target = member.fget if isinstance(member, property) else member
            if callable(target):
                assert inspect.getdoc(target), f"{cls.__name__}.{member_name} has no docstring"
