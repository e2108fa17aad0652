"""pyproject.toml asks for ranges; constraints.txt pins one tested point inside all of them.

The rules (pyproject.toml's comment says them too): every requirement is `>=tested,<next major` (the next
minor for 0.x, no cap needed for a calendar version), a tighter cap only with its reason in a comment
above it; constraints.txt pins every package reachable from warmcv's requirements, extras and build, each
inside every range that asks for it, transitive requirements included as far as this environment's
installed metadata can tell them.
"""

from __future__ import annotations

import importlib.metadata
import sysconfig
import tomllib
from functools import cache

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.conftest import REPO

PYPROJECT_TEXT = (REPO / "pyproject.toml").read_text()
PYPROJECT = tomllib.loads(PYPROJECT_TEXT)
CONSTRAINTS = REPO / "constraints.txt"
PROJECT = "warmcv"
REGENERATE = "regenerate it with python3 tools/update_constraints.py"
REINSTALL = 'reinstall with pip install -c constraints.txt -e ".[test]"'


def own_requirements() -> list[tuple[str, str]]:
    """(where, requirement text) for the dependencies, every extra and the build, less warmcv's own extras."""
    project = PYPROJECT["project"]
    found = [("dependencies", text) for text in project["dependencies"]]
    for extra, texts in project["optional-dependencies"].items():
        found += [(f"extra '{extra}'", text) for text in texts]
    found += [("build-system", text) for text in PYPROJECT["build-system"]["requires"]]
    return [(where, text) for where, text in found if canonicalize_name(Requirement(text).name) != PROJECT]


def parse_constraints(text: str) -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        requirement = Requirement(line)
        specifiers = list(requirement.specifier)
        if len(specifiers) != 1 or specifiers[0].operator != "==" or requirement.marker or requirement.extras:
            raise ValueError(f"constraints.txt line {number}: {raw!r} is not a plain name==version pin")
        name = canonicalize_name(requirement.name)
        if name in pins:
            raise ValueError(f"constraints.txt line {number}: {name} is pinned twice")
        pins[name] = Version(specifiers[0].version)
    return pins


@cache
def pins() -> dict[str, Version]:
    return parse_constraints(CONSTRAINTS.read_text())


def installed() -> importlib.metadata.Distribution:
    """warmcv's metadata as pip installed it into this environment's site-packages.

    Not importlib.metadata.distribution("warmcv"): with pytest's pythonpath the source tree comes first, and
    the warmcv.egg-info that setuptools leaves there would answer instead of what pip installed.
    """
    site = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    found = list(importlib.metadata.distributions(name=PROJECT, path=site))
    assert found, f"warmcv is not installed in this environment ({site[0]}): {REINSTALL}"
    return found[0]


def next_major(version: Version) -> Version | None:
    """The first release that may break: the next major, the next minor for 0.x, none for a calendar version."""
    if version.major >= 1000:  # 2026.9.0: the year says nothing about compatibility
        return None
    if version.major == 0:
        return Version(f"0.{version.minor + 1}")
    return Version(str(version.major + 1))


def has_reason_above(text: str) -> bool:
    """The requirement's line in pyproject.toml has a comment line right above it."""
    lines = PYPROJECT_TEXT.splitlines()
    index = next(i for i, line in enumerate(lines) if f'"{text}"' in line)
    return index > 0 and lines[index - 1].strip().startswith("#")


# ---- the rules for pyproject.toml's own requirements


def test_constraints_file_is_one_exact_pin_per_package():
    assert len(pins()) > 50, "constraints.txt should hold the whole test environment, transitive packages included"
    with pytest.raises(ValueError, match="not a plain name==version pin"):
        parse_constraints("pandas>=3.1.1\n")
    with pytest.raises(ValueError, match="pinned twice"):
        parse_constraints("PyYAML==6.0.3\npyyaml==6.0.4\n")


@pytest.mark.parametrize(("where", "text"), own_requirements(), ids=lambda value: value)
def test_requirement_is_a_range_from_the_tested_version_to_the_next_major(where, text):
    requirement = Requirement(text)
    name = canonicalize_name(requirement.name)
    operators = {specifier.operator for specifier in requirement.specifier}
    assert operators <= {">=", "<", "!="}, f"{where}: {text} uses {sorted(operators - {'>=', '<', '!='})}: write a range >=tested,<next major"
    lower = [Version(s.version) for s in requirement.specifier if s.operator == ">="]
    assert len(lower) == 1, f"{where}: {text} needs one lower bound (>=, the tested version)"
    assert name in pins(), f"{where}: {name} is not pinned in constraints.txt: {REGENERATE}"
    assert lower[0] == pins()[name], (f"{where}: {text}: the lower bound {lower[0]} is not the tested version "
                                      f"{pins()[name]} of constraints.txt (make them agree)")
    first_breaking = next_major(lower[0])
    caps = [Version(s.version) for s in requirement.specifier if s.operator == "<"]
    if first_breaking is None:
        return
    assert caps, f"{where}: {text} has no upper bound: add <{first_breaking} (the next major)"
    assert min(caps) <= first_breaking, f"{where}: {text} allows {first_breaking}, the next major, untested"
    if min(caps) < first_breaking:
        assert has_reason_above(text), f"{where}: {text} caps below the next major {first_breaking}: say why in a comment above it"


def test_next_major_of_semantic_zero_and_calendar_versions():
    assert next_major(Version("3.1.1")) == Version("4")
    assert next_major(Version("1.43.117")) == Version("2")
    assert next_major(Version("0.17.6")) == Version("0.18")
    assert next_major(Version("2026.9.0")) is None


def test_python_is_any_from_3_11():
    assert PYPROJECT["project"]["requires-python"] == ">=3.11"
    assert installed().metadata["Requires-Python"] == ">=3.11", f"the installed metadata is stale: {REINSTALL}"


def test_installed_metadata_lists_ranges_not_pins():
    """What pip sees when warmcv is installed into someone's environment: the built metadata, not pyproject."""
    requires = [Requirement(text) for text in installed().requires or []]
    base = [r for r in requires if r.marker is None or "extra" not in str(r.marker)]
    expected = [Requirement(text) for text in PYPROJECT["project"]["dependencies"]]
    exact = [str(r) for r in requires if any(s.operator in ("==", "===") for s in r.specifier)]
    assert not exact, f"exact pins in warmcv's installed metadata: {exact}"
    assert base, "no base requirements in warmcv's installed metadata"
    assert sorted(map(str, base)) == sorted(map(str, expected)), f"the installed metadata is stale: {REINSTALL}"


# ---- constraints.txt against the whole requirement tree


def evaluate(marker: Marker | None, extra: str) -> bool:
    return marker is None or marker.evaluate({"extra": extra})


def check_tree(pins: dict[str, Version]) -> tuple[list[str], set[str], list[str], list[str]]:
    """Walk warmcv's requirements (all extras, the build) into the installed metadata of every pinned package.

    Returns (problems, the package names reached, packages whose metadata is not installed here, packages
    installed at another version than their pin). The build's requirements are checked but not walked: the
    build installs them in its own isolated environment, not this one.
    """
    problems: list[str] = []
    reached: set[str] = set()
    not_installed: list[str] = []
    other_version: list[str] = []
    walked: set[tuple[str, frozenset[str]]] = set()
    todo: list[tuple[str, Requirement, str, bool]] = [
        (f"{PROJECT} ({where})", Requirement(text), "", where != "build-system") for where, text in own_requirements()]
    while todo:
        parent, requirement, extra, walk = todo.pop()
        if not evaluate(requirement.marker, extra):
            continue
        name = canonicalize_name(requirement.name)
        reached.add(name)
        if name not in pins:
            problems.append(f"{parent} requires {requirement}: {name} is not in constraints.txt")
            continue
        if not requirement.specifier.contains(pins[name], prereleases=True):
            problems.append(f"{parent} requires {requirement}, but constraints.txt pins {name}=={pins[name]}")
        key = (name, frozenset(requirement.extras))
        if not walk or key in walked:
            continue
        walked.add(key)
        try:
            distribution = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            not_installed.append(name)
            continue
        if Version(distribution.version) != pins[name]:
            other_version.append(f"{name} {distribution.version} (pinned {pins[name]})")
            continue
        for text in distribution.requires or []:
            child = Requirement(text)
            for child_extra in {"", *requirement.extras}:
                todo.append((f"{name} {pins[name]}", child, child_extra, True))
    return sorted(set(problems)), reached, sorted(set(not_installed)), sorted(set(other_version))


def test_constraints_pin_every_requirement_inside_its_range_transitively():
    problems, reached, not_installed, other_version = check_tree(pins())
    assert not problems, "\n".join(problems) + f"\n{REGENERATE}"
    assert not other_version, f"this environment is not the pinned one ({', '.join(other_version)}): {REINSTALL}"
    assert "aiobotocore" in reached and "mlflow" in reached, "the walk did not reach the launcher's dependencies"
    if not not_installed:  # the whole tree was read: constraints.txt holds nothing beyond it (and pip)
        stale = set(pins()) - reached - {"pip"}
        assert not stale, f"constraints.txt pins packages nothing requires: {sorted(stale)}: {REGENERATE}"


def test_the_tree_check_catches_a_pin_outside_a_transitive_range():
    """mlflow 3.17 requires pyarrow < 26 (which is why pyproject stops there): a pin at 26 must be caught."""
    moved = {**pins(), "pyarrow": Version("26.0.1")}
    problems = check_tree(moved)[0]
    assert any(p.startswith("mlflow ") and "pyarrow==26.0.1" in p for p in problems), problems
    assert any(p.startswith(f"{PROJECT} (dependencies) requires pyarrow") for p in problems), problems


def test_the_tree_check_catches_a_missing_transitive_pin():
    missing = {name: version for name, version in pins().items() if name != "aiobotocore"}
    problems = check_tree(missing)[0]
    assert any(p.startswith("s3fs ") and "aiobotocore is not in constraints.txt" in p for p in problems), problems


def ceiling(requirement: Requirement) -> Version:
    return min(Version(s.version) for s in requirement.specifier if s.operator == "<")


def test_the_launcher_botocore_cap_fits_what_aiobotocore_allows():
    """The cap in the launcher extra is aiobotocore's own: the pinned aiobotocore must ask for the same ceiling."""
    cap = next(Requirement(text) for text in PYPROJECT["project"]["optional-dependencies"]["launcher"]
               if Requirement(text).name == "botocore")
    aiobotocore = importlib.metadata.distribution("aiobotocore")
    asked = next(Requirement(text) for text in aiobotocore.requires if Requirement(text).name == "botocore")
    assert ceiling(cap) == ceiling(asked), (f"aiobotocore {aiobotocore.version} asks for {asked}: move the launcher "
                                            f"extra's {cap} with it")
