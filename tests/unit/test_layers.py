"""The package's layers import downward only: the order is the one written in warmcv's docstring.

Every import counts, also those inside functions (a lazy import is still a dependency), so a
container mode cannot quietly become a library that `tuning/` or `aws/` lean on again.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import warmcv

PACKAGE = Path(warmcv.__file__).parent


def layer_order() -> dict[str, int]:
    """{component: layer index} from the docstring's "Layers, lowest first" block."""
    doc = warmcv.__doc__ or ""
    _, found, rest = doc.partition("Layers, lowest first")
    assert found, "warmcv's docstring must state its layers"
    block = rest.split("\n\n", 2)[1]
    order: dict[str, int] = {}
    for index, line in enumerate(block.splitlines()):
        _layer, *components = line.split()
        for component in components:
            assert component not in order, f"{component} is listed twice"
            order[component] = index
    return order


def component(module: str) -> str | None:
    """warmcv.tuning.search -> tuning; warmcv.clock -> clock; warmcv -> None (the package root)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "warmcv" else None


def imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, module, names) of every warmcv import in the file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, []) for alias in node.names if alias.name.startswith("warmcv")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("warmcv") and not node.level:
            found.append((node.lineno, node.module, [alias.name for alias in node.names]))
    return found


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p.relative_to(PACKAGE).parts[0] not in ("__init__.py", "__main__.py"))


def test_every_component_has_a_layer() -> None:
    order = layer_order()
    present = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in modules()}
    assert present - set(order) == set(), "components missing from the layer list in warmcv's docstring"
    assert set(order) - present == set(), "the layer list names components that do not exist"


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_go_downward_only(path: Path) -> None:
    order = layer_order()
    own = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
    upward = []
    for line, module, names in imports(path):
        target = component(module)
        if target is None:
            # The package root: only its version (the root's public API is the top layer's).
            assert names == ["__version__"] or (module == "warmcv" and not names), \
                f"{path.name}:{line} imports {names} from the package root; import from the module that defines it"
            continue
        if order[target] > order[own]:
            upward.append(f"line {line}: {module} ({target}, layer {order[target]}) from {own} (layer {order[own]})")
    assert not upward, "imports from a higher layer:\n" + "\n".join(upward)


def test_the_check_catches_an_upward_import(tmp_path: Path) -> None:
    """The checker itself: a module of the CV core importing a container mode is reported."""
    source = tmp_path / "bad.py"
    source.write_text("def f():\n    from warmcv.modes.worker import report\n")
    order = layer_order()
    ((line, module, _),) = imports(source)
    assert line == 2 and order[component(module)] > order["cv"]
