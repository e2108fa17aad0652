"""docker/build_and_push.sh against stand-in `aws` and `docker` programs that record every call.

No AWS account or registry is reachable here, so this checks what the script asks of them: the calls,
their order and arguments, the tags, the login through stdin, and the result lines buildspec.yml exports.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

SCRIPT = REPO / "docker" / "build_and_push.sh"
DIGEST = "sha256:" + "ab" * 32
FAKE_AWS = f"""#!/usr/bin/env bash
echo "aws $*" >> "$FAKE_LOG"
case "$1 $2" in
  "sts get-caller-identity") echo 123456789012 ;;
  "configure get") [[ -n ${{FAKE_CONFIGURED_REGION:-}} ]] && echo "$FAKE_CONFIGURED_REGION" || exit 1 ;;
  "ecr describe-repositories")
    case "${{FAKE_REPOSITORY:-missing}}" in
      exists) echo '{{"repositories": []}}' ;;
      denied) echo "An error occurred (AccessDeniedException) when calling the DescribeRepositories operation: not allowed" >&2; exit 254 ;;
      *) echo "An error occurred (RepositoryNotFoundException) when calling the DescribeRepositories operation: The repository with name 'x' does not exist" >&2; exit 254 ;;
    esac ;;
  "ecr create-repository") echo '{{"repository": {{}}}}' ;;
  "ecr get-login-password") echo s3cret-token ;;
  "ecr describe-images") echo {DIGEST} ;;
  *) echo "fake aws: unexpected $*" >&2; exit 2 ;;
esac
"""
FAKE_DOCKER = """#!/usr/bin/env bash
if [[ $1 == login ]]; then echo "docker $* stdin=$(cat)" >> "$FAKE_LOG"; else echo "docker $*" >> "$FAKE_LOG"; fi
[[ $1 == image ]] && echo sha256:localimageid
exit 0
"""


@pytest.fixture
def fakes(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("aws", FAKE_AWS), ("docker", FAKE_DOCKER)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return bin_dir


def git_tag() -> str:
    sha = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                         text=True, check=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, check=True).stdout.strip()
    return f"{sha}-dirty" if dirty else sha


def run(fakes: Path, *args: str, **env: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    log = fakes.parent / "calls.log"
    log.unlink(missing_ok=True)
    log.touch()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "WARMCV_", "CODEBUILD_"))}
    full_env.update(PATH=f"{fakes}:{os.environ['PATH']}", FAKE_LOG=str(log), **env)
    result = subprocess.run([str(SCRIPT), *args], env=full_env, capture_output=True, text=True, timeout=60)
    return result, log.read_text().splitlines()


def test_creates_the_repository_logs_in_builds_tags_pushes_and_reports(fakes, tmp_path):
    env_file = tmp_path / "image.env"
    result, calls = run(fakes, "--env-file", str(env_file), AWS_REGION="eu-west-1")
    assert result.returncode == 0, result.stderr
    tag = git_tag()
    registry = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
    image = f"{registry}/warmcv"
    assert calls[0] == "aws sts get-caller-identity --query Account --output text"
    assert calls[1] == "aws ecr describe-repositories --region eu-west-1 --repository-names warmcv"
    assert calls[2] == ("aws ecr create-repository --region eu-west-1 --repository-name warmcv "
                        "--image-scanning-configuration scanOnPush=true --image-tag-mutability MUTABLE")
    assert calls[3] == "aws ecr get-login-password --region eu-west-1"
    assert calls[4] == f"docker login --username AWS --password-stdin {registry} stdin=s3cret-token"
    assert calls[5] == (f"docker build --platform linux/amd64 --label org.opencontainers.image.revision={tag} "
                        f"-t {image}:{tag} -t {image}:latest {REPO}")
    assert calls[6:8] == [f"docker push {image}:{tag}", f"docker push {image}:latest"]
    assert calls[8] == (f"aws ecr describe-images --region eu-west-1 --repository-name warmcv "
                        f"--image-ids imageTag={tag} --query imageDetails[0].imageDigest --output text")
    assert len(calls) == 9
    expected = {"IMAGE_URI": f"{image}:{tag}", "IMAGE_DIGEST": DIGEST, "IMAGE_URI_DIGEST": f"{image}@{DIGEST}",
                "IMAGE_MOVING_URI": f"{image}:latest"}
    printed = dict(line.split("=", 1) for line in result.stdout.splitlines())
    assert printed == expected
    assert env_file.read_text() == result.stdout
    assert "s3cret-token" not in result.stdout + result.stderr  # the password only travels through stdin

    # buildspec.yml sources the file and exports these names: each must be set by it.
    exported = yaml.safe_load((REPO / "buildspec.yml").read_text())["env"]["exported-variables"]
    sourced = subprocess.run(["bash", "-c", f"set -a; . {env_file}; " + "; ".join(f'echo "${n}"' for n in exported)],
                             capture_output=True, text=True, check=True).stdout.splitlines()
    assert sourced == [expected[n] for n in exported]


def test_existing_repository_is_not_created_and_options_apply(fakes):
    result, calls = run(fakes, "--repository", "team/warmcv", "--tag", "stable", "--region", "cn-north-1",
                        "--base-image", "python:3.11-slim-bookworm", "--", "--pull",
                        FAKE_REPOSITORY="exists")
    assert result.returncode == 0, result.stderr
    assert not any("create-repository" in c for c in calls)
    build = next(c for c in calls if c.startswith("docker build"))
    image = "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/team/warmcv"
    assert f"-t {image}:stable" in build
    assert build.endswith(f"--build-arg BASE_IMAGE=python:3.11-slim-bookworm --pull {REPO}")
    assert f"docker push {image}:stable" in calls


def test_region_from_the_cli_configuration(fakes):
    result, calls = run(fakes, FAKE_REPOSITORY="exists", FAKE_CONFIGURED_REGION="us-west-2")
    assert result.returncode == 0, result.stderr
    assert calls[0] == "aws configure get region"
    assert "IMAGE_URI=123456789012.dkr.ecr.us-west-2.amazonaws.com/warmcv:" in result.stdout


def test_no_region_is_a_clear_error(fakes):
    result, calls = run(fakes)
    assert result.returncode == 1
    assert "no AWS region: pass --region or set AWS_REGION" in result.stderr
    assert not any(c.startswith("docker") for c in calls)


def test_access_denied_stops_before_building(fakes):
    result, calls = run(fakes, AWS_REGION="eu-west-1", FAKE_REPOSITORY="denied")
    assert result.returncode == 1
    assert "cannot look up ECR repository warmcv" in result.stderr and "AccessDeniedException" in result.stderr
    assert not any(c.startswith("docker") or "create-repository" in c for c in calls)


def test_dry_run_calls_nothing(fakes):
    result, calls = run(fakes, "--dry-run", AWS_REGION="eu-west-1", AWS_ACCOUNT_ID="210987654321")
    assert result.returncode == 0, result.stderr
    assert calls == []
    assert "+ docker build --platform linux/amd64" in result.stderr
    assert f"IMAGE_URI=210987654321.dkr.ecr.eu-west-1.amazonaws.com/warmcv:{git_tag()}" in result.stdout


def test_no_push_builds_locally_without_aws(fakes):
    result, calls = run(fakes, "--no-push")
    assert result.returncode == 0, result.stderr
    assert all(c.startswith("docker") for c in calls)
    assert not any(c.startswith(("docker push", "docker login")) for c in calls)
    assert f"IMAGE_URI=warmcv:{git_tag()}" in result.stdout and "IMAGE_ID=sha256:localimageid" in result.stdout


def test_invalid_repository_name(fakes):
    result, calls = run(fakes, "--repository", "Warm CV", AWS_REGION="eu-west-1")
    assert result.returncode == 1 and "repository name 'Warm CV' is not valid for ECR" in result.stderr
    assert calls == []


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed (apt-get install shellcheck)")
def test_shellcheck_clean():
    result = subprocess.run(["shellcheck", str(SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
