"""Deploying the Lambda functions: create when missing, update only what changed (botocore Stubber)."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from warmcv.launcher import lambda_deploy

ROLE = "arn:aws:iam::111122223333:role/warmcv-lambda"
ARN = "arn:aws:lambda:us-east-1:111122223333:function:warmcv-best-hyperparameters"
BEST, RELEASE = lambda_deploy.functions("warmcv-best-hyperparameters", "warmcv-release-warm-pools")


@pytest.fixture
def client():
    return boto3.client("lambda", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


def configuration(sha: str, **changes) -> dict:
    base = {"FunctionName": BEST.name, "FunctionArn": ARN, "Role": ROLE, "Handler": BEST.handler_path,
            "Runtime": lambda_deploy.RUNTIME, "Timeout": BEST.timeout, "MemorySize": BEST.memory,
            "Description": BEST.description, "CodeSha256": sha}
    return {**base, **changes}


def test_creates_a_missing_function(client):
    package = lambda_deploy.build_zip()
    with Stubber(client) as stub:
        stub.add_client_error("get_function", "ResourceNotFoundException", http_status_code=404,
                              expected_params={"FunctionName": BEST.name})
        stub.add_response("create_function", {"FunctionArn": ARN}, {
            "FunctionName": BEST.name, "Code": {"ZipFile": package}, "Publish": True, "Role": ROLE,
            "Handler": "warmcv.launcher.handlers.best_hyperparameters", "Runtime": lambda_deploy.RUNTIME,
            "Timeout": 120, "MemorySize": 256, "Description": BEST.description})
        assert lambda_deploy.deploy(client, BEST, ROLE, package) == ARN
        stub.assert_no_pending_responses()


def test_unchanged_function_is_left_alone(client):
    package = lambda_deploy.build_zip()
    with Stubber(client) as stub:
        stub.add_response("get_function", {"Configuration": configuration(lambda_deploy.code_sha256(package))},
                          {"FunctionName": BEST.name})
        assert lambda_deploy.deploy(client, BEST, ROLE, package) == ARN
        stub.assert_no_pending_responses()


def test_changed_code_and_configuration_are_updated(client):
    package = lambda_deploy.build_zip()
    with Stubber(client) as stub:
        stub.add_response("get_function", {"Configuration": configuration("old", Timeout=3)},
                          {"FunctionName": BEST.name})
        stub.add_response("update_function_code", {"FunctionArn": ARN},
                          {"FunctionName": BEST.name, "ZipFile": package, "Publish": True})
        stub.add_response("get_function", {"Configuration": configuration("new", LastUpdateStatus="Successful")},
                          {"FunctionName": BEST.name})
        stub.add_response("update_function_configuration", {"FunctionArn": ARN}, {
            "FunctionName": BEST.name, "Role": ROLE, "Handler": BEST.handler_path, "Runtime": lambda_deploy.RUNTIME,
            "Timeout": 120, "MemorySize": 256, "Description": BEST.description})
        assert lambda_deploy.deploy(client, BEST, ROLE, package) == ARN
        stub.assert_no_pending_responses()


def test_a_changed_source_changes_the_package(tmp_path, monkeypatch):
    import shutil

    for relative in lambda_deploy.LAMBDA_FILES:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(lambda_deploy.PACKAGE_ROOT / relative, tmp_path / relative)
    before = lambda_deploy.build_zip()
    monkeypatch.setattr(lambda_deploy, "PACKAGE_ROOT", tmp_path)
    assert lambda_deploy.build_zip() == before  # same sources, same bytes, wherever they live
    (tmp_path / "warmcv/launcher/handlers.py").write_text("# changed\n", encoding="utf-8")
    assert lambda_deploy.code_sha256(lambda_deploy.build_zip()) != lambda_deploy.code_sha256(before)
