"""AWS commands without credentials, a region or a valid session: one line that says what to provide.

The commands run as a user runs them (a subprocess) in an environment with no AWS configuration at
all: no credential variables, config and credentials files that do not exist, the instance metadata
service switched off (so botocore never asks 169.254.169.254) and every endpoint pointed at a closed
port on 127.0.0.1, so a request that slipped through would fail here instead of leaving the machine.
AWS's refusals of a request (an expired token, a denied action) come from botocore's Stubber.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from tests.conftest import subprocess_env
from tests.launcher.conftest import EXAMPLE
from warmcv.cli import main


def no_aws_environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in subprocess_env().items() if not k.startswith("AWS_") or k == "AWS_CA_BUNDLE"}
    env.update(AWS_CONFIG_FILE=str(tmp_path / "no-config"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-credentials"),
               AWS_EC2_METADATA_DISABLED="true", AWS_ENDPOINT_URL="http://127.0.0.1:9", **extra)
    return env


def _warmcv(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "warmcv", *argv], capture_output=True, text=True, env=env,
                          timeout=300)


def _error_line(result: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in result.stdout + result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("warmcv:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


@pytest.mark.parametrize("argv", [
    ["pipeline", "upsert", "--config", str(EXAMPLE)],
    ["pipeline", "start", "--config", str(EXAMPLE)],
    ["pipeline", "deploy-lambdas", "--config", str(EXAMPLE)],
    ["tune", "--sagemaker", "--config", str(EXAMPLE), "--prepared", "s3://my-bucket/prepared/"],
    ["release-warm-pools", "--dry-run", "--all-warmcv", "--region", "us-east-1"],
], ids=lambda argv: " ".join(argv[:2]))
def test_no_credentials_is_one_line_that_says_how_to_provide_them(tmp_path: Path, argv: list[str]) -> None:
    pytest.importorskip("sagemaker.core")  # the launcher extra: without it these commands say to install it
    result = _warmcv(no_aws_environment(tmp_path), *argv)
    assert result.returncode == 2
    line = _error_line(result)
    assert line.startswith("warmcv: error: no AWS credentials found: provide them in one of the ways boto3 looks")
    for way in ("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", "~/.aws/credentials", "aws configure",
                "aws sso login --profile NAME", "AWS_PROFILE=NAME", "the role of the instance or container"):
        assert way in line


def test_no_region_is_one_line(tmp_path: Path) -> None:
    env = no_aws_environment(tmp_path, AWS_ACCESS_KEY_ID="AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY="example")
    result = _warmcv(env, "release-warm-pools", "--dry-run", "--all-warmcv")
    assert result.returncode == 2
    assert _error_line(result) == ("warmcv: error: no AWS region: give --region (or aws.region in the config "
                                   "file), or set AWS_DEFAULT_REGION, or region in ~/.aws/config")


def test_an_unknown_profile_is_one_line(tmp_path: Path) -> None:
    result = _warmcv(no_aws_environment(tmp_path, AWS_PROFILE="nope"), "release-warm-pools", "--dry-run",
                     "--all-warmcv", "--region", "us-east-1")
    assert result.returncode == 2
    assert "The config profile (nope) could not be found" in _error_line(result)


def test_an_unreachable_endpoint_is_one_line(tmp_path: Path) -> None:
    env = no_aws_environment(tmp_path, AWS_ACCESS_KEY_ID="AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY="example",
                             AWS_MAX_ATTEMPTS="1")
    result = _warmcv(env, "release-warm-pools", "--dry-run", "--all-warmcv", "--region", "us-east-1")
    assert result.returncode == 2
    line = _error_line(result)
    assert line.startswith('warmcv: error: AWS cannot be reached (Could not connect to the endpoint URL: '
                           '"http://127.0.0.1:9/")')


@pytest.mark.parametrize("code, message, words", [
    ("ExpiredTokenException", "The security token included in the request is expired",
     "AWS refused the credentials in use (ExpiredTokenException: The security token included in the request is "
     "expired); they may have expired: renew them"),
    ("AccessDeniedException", "User: arn:aws:iam::111122223333:user/x is not authorized to perform: "
     "sagemaker:ListTrainingJobs", "AWS denied ListTrainingJobs (AccessDeniedException: User: "),
])
def test_aws_refusing_the_request_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
                                             code: str, message: str, words: str) -> None:
    from warmcv.launcher import warm_pools

    sm = boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    monkeypatch.setattr(warm_pools, "sagemaker_client", lambda region=None: sm)
    with Stubber(sm) as stub:
        stub.add_client_error("list_training_jobs", service_error_code=code, service_message=message,
                              http_status_code=400)
        assert main(["release-warm-pools", "--dry-run", "--all-warmcv"]) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    [line] = captured.err.splitlines()
    assert line.startswith(f"warmcv: error: {words}"), line


def test_our_own_bugs_keep_their_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the surroundings' faults become one line: a botocore error from a request we built wrong does not."""
    from botocore.exceptions import ParamValidationError

    from warmcv.launcher import warm_pools

    def broken(*args, **kwargs):
        raise ParamValidationError(report="Unknown parameter in input: \"Bogus\"")

    monkeypatch.setattr(warm_pools, "sagemaker_client", lambda region=None: None)
    monkeypatch.setattr(warm_pools, "release_warm_pools", broken)
    with pytest.raises(ParamValidationError):
        main(["release-warm-pools", "--dry-run", "--all-warmcv"])
