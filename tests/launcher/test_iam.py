"""IAM documents: valid structure, scoped to the run, and allowing every API operation the code calls."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import boto3
import pytest

from tests.conftest import SRC
from warmcv.launcher import iam, lambda_deploy

ACTION = re.compile(r"^[a-z0-9-]+:[A-Za-z*]+$")
# boto3's managed-transfer helpers are not API operations: the actions they need.
TRANSFER_ACTIONS = {"download_file": ["s3:GetObject"], "download_fileobj": ["s3:GetObject"],
                    "upload_file": ["s3:PutObject"], "upload_fileobj": ["s3:PutObject"]}


def test_documents_are_well_formed(config, tmp_path: Path):
    paths = iam.write_policies(config, tmp_path)
    assert {p.stem for p in paths} == {"job-role", "job-role.trust", "pipeline-role", "pipeline-role.trust",
                                       "lambda-role", "lambda-role.trust", "launcher"}
    for path in paths:
        document = json.loads(path.read_text())
        assert document["Version"] == "2012-10-17" and document["Statement"]
        sids = [s.get("Sid") for s in document["Statement"] if "Sid" in s]
        assert len(sids) == len(set(sids)), path
        for statement in document["Statement"]:
            assert statement["Effect"] == "Allow"
            if path.stem.endswith(".trust"):
                assert statement["Action"] == "sts:AssumeRole"
                continue
            assert set(statement) <= {"Sid", "Effect", "Action", "Resource", "Condition"}
            assert statement["Action"] and all(ACTION.match(a) for a in statement["Action"]), statement
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            for resource in resources:
                assert resource == "*" or resource.startswith("arn:aws:"), resource
                if resource.startswith("arn:aws:sagemaker:") or resource.startswith("arn:aws:lambda:"):
                    assert ":us-east-1:111122223333:" in resource, resource
            if resources == ["*"]:
                # only actions that have no resource-level permissions may use "*"
                assert set(statement["Action"]) <= {"ecr:GetAuthorizationToken", "sagemaker:ListTrainingJobs",
                                                    "cloudwatch:PutMetricData"}, statement


def test_roles_are_passed_only_to_their_service(config):
    for _name, document in iam.policies(config).items():
        for statement in document["Statement"]:
            if "iam:PassRole" in statement.get("Action", []):
                assert statement["Action"] == ["iam:PassRole"]
                assert statement["Condition"]["StringEquals"]["iam:PassedToService"] in (
                    "sagemaker.amazonaws.com", "lambda.amazonaws.com")
    job = iam.job_role_policy(config)
    passes = [s for s in job["Statement"] if s["Action"] == ["iam:PassRole"]]
    assert [s["Resource"] for s in passes] == [config.aws.role_arn]  # the coordinator passes only itself


def test_s3_is_scoped_to_the_runs_prefixes(config):
    job = iam.job_role_policy(config)
    writes = [s for s in job["Statement"] if "s3:PutObject" in s["Action"]]
    assert [s["Resource"] for s in writes] == ["arn:aws:s3:::my-bucket/warmcv/census/*"]
    lam = iam.lambda_role_policy(config)
    by_sid = {s["Sid"]: s for s in lam["Statement"]}
    assert by_sid["ReadTrialModels"]["Resource"] == "arn:aws:s3:::my-bucket/warmcv/census/tuning/*"
    assert by_sid["WriteStatistics"]["Resource"] == "arn:aws:s3:::my-bucket/warmcv/census/evaluation/*"
    assert iam.image_repository_arn(config) == "arn:aws:ecr:us-east-1:111122223333:repository/warmcv"


def _called_operations(paths: list[Path], clients: dict[str, object], services: tuple[str, ...]) -> set[str]:
    """IAM actions for every client method of `services` named in the code (attribute calls matching an operation)."""
    mapping = {}
    for service in services:
        client = clients[service]
        for method, operation in client.meta.method_to_api_mapping.items():
            mapping.setdefault(method, []).append(f"{service}:{operation}")
    found: set[str] = set()
    for path in paths:
        tree = ast.parse(path.read_text())
        # Calls on imported modules (re.search, json.loads) are not client calls, whatever their name.
        modules = {alias.asname or alias.name.split(".")[0]
                   for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                receiver = node.func.value
                if isinstance(receiver, ast.Name) and receiver.id in modules:
                    continue
                found.update(mapping.get(node.func.attr, []))
                found.update(TRANSFER_ACTIONS.get(node.func.attr, []))
    return found


@pytest.fixture(scope="module")
def clients():
    kwargs = dict(region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    return {name: boto3.client(name, **kwargs) for name in ("sagemaker", "s3", "lambda")}


def test_lambda_role_allows_every_call_of_the_deployed_handlers(config, clients):
    shipped = [SRC / f for f in lambda_deploy.LAMBDA_FILES]
    called = _called_operations(shipped, clients, ("sagemaker", "s3"))
    assert {"sagemaker:DescribeHyperParameterTuningJob", "sagemaker:DescribeTrainingJob", "s3:GetObject",
            "s3:PutObject", "sagemaker:ListTrainingJobs", "sagemaker:ListTags", "sagemaker:UpdateTrainingJob"} <= called
    assert called <= iam.allowed_actions(iam.lambda_role_policy(config))


def test_launcher_policy_allows_every_call_of_the_launcher_code(config, clients):
    called = (_called_operations([SRC / "warmcv/launcher/lambda_deploy.py"], clients, ("lambda",))
              | _called_operations([SRC / "warmcv/launcher/warm_pools.py", SRC / "warmcv/launcher/executions.py",
                                    SRC / "warmcv/cli/launcher.py"], clients, ("sagemaker",)))
    assert {"lambda:CreateFunction", "sagemaker:UpdateTrainingJob", "sagemaker:ListPipelineExecutionSteps"} <= called
    assert called <= iam.allowed_actions(iam.launcher_policy(config))


def test_job_role_allows_every_call_of_the_coordinator_code(config, clients):
    """Whatever the fold runner calls (warmcv.aws and warmcv.runners run inside the coordinator job)."""
    code = sorted((SRC / "warmcv/aws").rglob("*.py")) + sorted((SRC / "warmcv/runners").rglob("*.py"))
    called = _called_operations(code, clients, ("sagemaker", "s3"))
    # The design's list holds whether or not the fold runner is in this checkout yet.
    assert called | set(iam.COORDINATOR_ACTIONS) | {"iam:PassRole"} <= iam.allowed_actions(iam.job_role_policy(config))
