"""Every install that CI, the image, CodeBuild, the README and bench/ run takes the tested pins.

pyproject.toml only has ranges; an install without `-c constraints.txt` would take whatever is newest
inside them, so the image, CI and a benchmark could each run different versions from the ones tested.
Wherever warmcv itself is built (and pip is new enough), `--build-constraint` pins the build's setuptools.
"""

from __future__ import annotations

import re
import shlex

import yaml

from tests.conftest import REPO

CONSTRAINED = re.compile(r"(?:^|\s)(?:-c|--constraint)[ =]constraints\.txt(?:\s|$)")
BUILD_CONSTRAINED = re.compile(r"(?:^|\s)--build-constraint[ =]constraints\.txt(?:\s|$)")


def simple_commands(script: str) -> list[str]:
    """A shell script's (or Dockerfile's) commands: continuations joined, comment lines dropped, split at && ; ||."""
    lines = [line for line in script.splitlines() if not line.strip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    return [part.strip() for line in joined.splitlines() for part in re.split(r"&&|\|\||;", line) if part.strip()]


def pip_installs(script: str) -> list[str]:
    return [command for command in simple_commands(script) if re.search(r"\bpip install\b", command)]


def builds_the_project(command: str) -> bool:
    """The install's targets include this checkout (`.`, `.[extra]`), so pip builds warmcv with setuptools."""
    return any(token == "." or token.startswith(".[") for token in shlex.split(command))


def code_blocks(markdown: str) -> list[str]:
    return re.findall(r"```(?:bash|sh)?\n(.*?)```", markdown, flags=re.S)


def assert_constrained(where: str, script: str, *, build_too: bool) -> list[str]:
    installs = pip_installs(script)
    assert installs, f"{where}: no pip install found"
    for command in installs:
        assert CONSTRAINED.search(command), f"{where}: `{command}` does not install with -c constraints.txt"
        if build_too and builds_the_project(command):
            assert BUILD_CONSTRAINED.search(command), f"{where}: `{command}` builds warmcv without --build-constraint"
    return installs


def test_the_parsing_helpers():
    script = "a \\\n  && pip install -c constraints.txt x\n# pip install y\nb; pip install -e '.[test]'\n"
    assert pip_installs(script) == ["pip install -c constraints.txt x", "pip install -e '.[test]'"]
    assert builds_the_project("pip install -e '.[test]'") and builds_the_project("pip install --no-deps .")
    assert not builds_the_project("pip install -c constraints.txt --upgrade pip")
    assert not CONSTRAINED.search("pip install -c constraints.txt.bak x")


def test_dockerfile_installs_and_builds_with_the_constraints():
    dockerfile = (REPO / "Dockerfile").read_text()
    installs = assert_constrained("Dockerfile", dockerfile, build_too=True)
    assert any(builds_the_project(command) for command in installs)
    copied = re.search(r"^COPY (.*)\s\./$", dockerfile, flags=re.M)
    assert copied and "constraints.txt" in copied.group(1).split(), "constraints.txt is not copied before the installs"
    assert dockerfile.index(copied.group(0)) < dockerfile.index(installs[0].split()[0] + " install")
    # The base image's pip predates --build-constraint: it is upgraded (to its pin) before the first use.
    upgrade = next(i for i, c in enumerate(installs) if "--upgrade pip" in c)
    first_build = next(i for i, c in enumerate(installs) if BUILD_CONSTRAINED.search(c))
    assert upgrade < first_build
    ignored = (REPO / ".dockerignore").read_text().splitlines()
    assert "!constraints.txt" in ignored, ".dockerignore keeps constraints.txt out of the build context"


def test_ci_installs_from_nothing_with_the_constraints():
    script = (REPO / ".ci" / "run").read_text()
    assert re.search(r"^python3 -m venv --clear \.venv$", script, flags=re.M), "CI must start from an empty venv"
    readme_test_command = readme_commands()[1]
    own = script.replace(readme_test_command, "")
    assert own != script, "CI does not run README's test command verbatim"
    assert_constrained(".ci/run", own, build_too=True)
    assert_constrained(".ci/run (README's test command)", readme_test_command, build_too=False)


def test_codebuild_installs_with_the_constraints():
    spec = yaml.safe_load((REPO / "buildspec.yml").read_text())
    install = "\n".join(spec["phases"]["install"]["commands"])
    assert_constrained("buildspec.yml", install, build_too=True)


def readme_commands() -> list[str]:
    """README's quick-start commands: the non-comment lines of its first code block."""
    block = code_blocks((REPO / "README.md").read_text())[0]
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def test_readme_quick_start_installs_with_the_constraints():
    first, second = readme_commands()
    assert first.startswith("python3 -m venv .venv && "), "command 1 must make the venv on a fresh machine"
    assert "warmcv run --example" in first
    assert second.endswith(".venv/bin/python -m pytest")
    # A fresh venv's pip (23.x with Python 3.11) has no --build-constraint: README uses -c only.
    for command in (first, second):
        assert_constrained("README quick start", command, build_too=False)
    for block in code_blocks((REPO / "README.md").read_text()):
        for command in pip_installs(block):
            if builds_the_project(command):
                assert CONSTRAINED.search(command), f"README: `{command}` installs the checkout without the pins"


def test_bench_installs_with_the_constraints():
    instructions = (REPO / "bench" / "README.md").read_text()
    installs = [c for block in code_blocks(instructions) for c in pip_installs(block)]
    assert installs, "bench/README.md says no install command"
    for command in installs:
        assert CONSTRAINED.search(command), f"bench/README.md: `{command}` does not install with -c constraints.txt"
