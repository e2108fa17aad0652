"""buildspec.yml: the structure CodeBuild needs, and the wiring to build_and_push.sh's result lines."""

from __future__ import annotations

import re

import yaml

from tests.conftest import REPO

SPEC = yaml.safe_load((REPO / "buildspec.yml").read_text())
SCRIPT = (REPO / "docker" / "build_and_push.sh").read_text()


def commands(phase: str) -> list[str]:
    return SPEC["phases"][phase]["commands"]


def test_version_and_phases():
    assert SPEC["version"] == 0.2
    assert set(SPEC["phases"]) <= {"install", "pre_build", "build", "post_build"}
    for phase in SPEC["phases"].values():
        assert all(isinstance(c, str) and c.strip() for c in phase["commands"])


def test_install_uses_the_pinned_python_and_the_test_extra():
    assert SPEC["phases"]["install"]["runtime-versions"]["python"] == "3.11"
    assert any('-e ".[test]"' in c for c in commands("install"))


def test_unit_tests_run_before_the_build():
    assert any("pytest" in c and '-m "not docker"' in c for c in commands("pre_build"))


def test_build_pushes_with_the_script_and_exports_its_result():
    build = commands("build")
    push = next(i for i, c in enumerate(build) if c.startswith("docker/build_and_push.sh"))
    env_file = re.search(r"--env-file (\S+)", build[push]).group(1)
    sourced = next(i for i, c in enumerate(build) if f". ./{env_file}" in c)
    assert push < sourced and "set -a" in build[sourced]
    exported = SPEC["env"]["exported-variables"]
    assert exported == ["IMAGE_URI", "IMAGE_DIGEST", "IMAGE_URI_DIGEST"]
    for name in exported:  # each exported variable is a line the script writes
        assert f"{name}=$image" in SCRIPT or f"{name}=$digest" in SCRIPT
    assert env_file in SPEC["artifacts"]["files"]


def test_codebuild_variables_match_the_script():
    for name in SPEC["env"]["variables"]:
        assert "${" + name + ":-" in SCRIPT
