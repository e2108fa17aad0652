"""The Lambda handlers: the best trial's hyperparameters from a real coordinator's model archive, and the
deployment zip, which must run in Lambda's runtime (standard library + boto3, nothing else)."""

from __future__ import annotations

import ast
import io
import json
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber

from tests.conftest import subprocess_env
from warmcv.contract import ContainerPaths
from warmcv.declarations import HYPERPARAMETERS
from warmcv.launcher import handlers, lambda_deploy
from warmcv.modes.entry import run_training_job

TUNING = "warmcv-tune-abc"
BEST = "warmcv-tune-abc-003-9f8e7d6c"
MODEL_URI = f"s3://bucket/run/tuning/{BEST}/output/model.tar.gz"
EVALUATION_URI = "s3://bucket/run/evaluation/exec-1/cv_statistics.json"
# Lambda's Python runtime: the standard library plus these (boto3 and what it needs).
LAMBDA_RUNTIME_PACKAGES = {"boto3", "botocore", "jmespath", "dateutil", "urllib3", "s3transfer", "six"}


@pytest.fixture(scope="module")
def coordinator_model(tmp_path_factory, prepared_census) -> bytes:
    """model.tar.gz exactly as SageMaker would tar a real coordinator's model dir (local fold runner)."""
    base = tmp_path_factory.mktemp("job") / "ml"
    config = base / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps({
        "mode": "coordinator", "fold_runner": "local", "num_leaves": "15", "learning_rate": "0.2",
        "early_stopping_rounds": "5", "num_boost_round": "200", "num_threads": "1"}))
    (base / "input" / "data").mkdir(parents=True)
    (base / "input" / "data" / "train").symlink_to(prepared_census, target_is_directory=True)
    assert run_training_job(ContainerPaths(base)) == 0
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path in sorted((base / "model").iterdir()):
            archive.add(path, arcname=path.name)
    return buffer.getvalue()


def clients():
    kwargs = dict(region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    return boto3.client("sagemaker", **kwargs), boto3.client("s3", **kwargs)


def stub_best_trial(sm_stub: Stubber, s3_stub: Stubber, model: bytes) -> None:
    sm_stub.add_response("describe_hyper_parameter_tuning_job", {
        "HyperParameterTuningJobName": TUNING,
        "HyperParameterTuningJobArn": f"arn:aws:sagemaker:us-east-1:111122223333:hyper-parameter-tuning-job/{TUNING}",
        "HyperParameterTuningJobConfig": {"Strategy": "Bayesian", "ResourceLimits": {"MaxParallelTrainingJobs": 2}},
        "HyperParameterTuningJobStatus": "Completed", "CreationTime": "2026-11-01T00:00:00Z",
        "TrainingJobStatusCounters": {}, "ObjectiveStatusCounters": {},
        "BestTrainingJob": {"TrainingJobName": BEST, "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:111122223333:training-job/{BEST}", "CreationTime": "2026-11-01T00:00:00Z",
                            "TrainingJobStatus": "Completed",
                            "TunedHyperParameters": {"num_leaves": "15", "learning_rate": "0.2"}},
    }, {"HyperParameterTuningJobName": TUNING})
    sm_stub.add_response("describe_training_job", {
        "TrainingJobName": BEST, "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:111122223333:training-job/{BEST}",
        "TrainingJobStatus": "Completed", "SecondaryStatus": "Completed", "CreationTime": "2026-11-01T00:00:00Z",
        "AlgorithmSpecification": {"TrainingInputMode": "File"}, "ResourceConfig": {"VolumeSizeInGB": 30},
        "StoppingCondition": {}, "ModelArtifacts": {"S3ModelArtifacts": MODEL_URI},
        "HyperParameters": {"mode": "coordinator", "fold_runner": "sagemaker", "num_leaves": "15",
                            "learning_rate": "0.2", "early_stopping_rounds": "5", "num_boost_round": "200",
                            "_tuning_objective_metric": "validation:score"},
    }, {"TrainingJobName": BEST})
    s3_stub.add_response("get_object", {"Body": StreamingBody(io.BytesIO(model), len(model))},
                         {"Bucket": "bucket", "Key": f"run/tuning/{BEST}/output/model.tar.gz"})
    s3_stub.add_response("put_object", {}, {"Bucket": "bucket", "Key": "run/evaluation/exec-1/cv_statistics.json",
                                            "Body": ANY, "ContentType": "application/json"})


EVENT = {"tuning_job_name": TUNING, "names": "learning_rate,num_leaves,num_boost_round", "rounds_from_cv": "true",
         "evaluation_s3_uri": EVALUATION_URI, "task": "binary"}


def test_best_trial_returns_tuned_values_cv_rounds_and_writes_statistics(coordinator_model):
    sm, s3 = clients()
    written = {}
    with Stubber(sm) as sm_stub, Stubber(s3) as s3_stub:
        stub_best_trial(sm_stub, s3_stub, coordinator_model)
        s3.meta.events.register("before-parameter-build.s3.PutObject",
                                lambda params, **_: written.update(json.loads(params["Body"])))
        out = handlers.best_trial(sm, s3, EVENT)
        sm_stub.assert_no_pending_responses()
        s3_stub.assert_no_pending_responses()
    with tarfile.open(fileobj=io.BytesIO(coordinator_model)) as archive:
        summary = json.load(archive.extractfile("cv_summary.json"))
    assert out["learning_rate"] == "0.2" and out["num_leaves"] == "15"
    # early stopping was on: the final fit takes the rounds the folds found, not the upper bound 200
    assert out["num_boost_round"] == str(summary["recommended_num_boost_round"]) != "200"
    assert out[handlers.CV_MEAN] == summary["validation_mean"] and isinstance(out[handlers.CV_MEAN], float)
    assert float(out[handlers.CV_STD]) == summary["validation_std"] > 0
    assert out[handlers.BEST_TRAINING_JOB] == BEST and out[handlers.EVALUATION_URI] == EVALUATION_URI
    stats = written["binary_classification_metrics"]["auc"]
    assert stats == {"value": summary["validation_mean"], "standard_deviation": summary["validation_std"]}
    assert len(written["folds"]) == 3


def test_without_early_stopping_the_trials_rounds_are_kept(coordinator_model):
    sm, s3 = clients()
    with Stubber(sm) as sm_stub, Stubber(s3) as s3_stub:
        stub_best_trial(sm_stub, s3_stub, coordinator_model)
        out = handlers.best_trial(sm, s3, {**EVENT, "rounds_from_cv": "false"})
    assert out["num_boost_round"] == "200"


def test_missing_hyperparameter_and_missing_summary_are_clear(coordinator_model):
    sm, s3 = clients()
    with Stubber(sm) as sm_stub, Stubber(s3) as s3_stub:
        stub_best_trial(sm_stub, s3_stub, coordinator_model)
        with pytest.raises(handlers.HandlerError, match="has no hyperparameter 'max_bin'"):
            handlers.best_trial(sm, s3, {**EVENT, "names": "max_bin"})
    empty = io.BytesIO()
    with tarfile.open(fileobj=empty, mode="w:gz") as archive:
        info = tarfile.TarInfo("model.txt")
        archive.addfile(info, io.BytesIO(b""))
    sm, s3 = clients()
    with Stubber(sm) as sm_stub, Stubber(s3) as s3_stub:
        stub_best_trial(sm_stub, s3_stub, empty.getvalue())
        with pytest.raises(handlers.HandlerError, match="holds no cv_summary.json"):
            handlers.best_trial(sm, s3, EVENT)
    with pytest.raises(handlers.HandlerError, match="no 'names'"):
        handlers.best_trial(sm, s3, {"tuning_job_name": TUNING, "evaluation_s3_uri": EVALUATION_URI})


def test_output_names_never_collide_with_hyperparameters():
    extra = {handlers.BEST_TRAINING_JOB, handlers.CV_MEAN, handlers.CV_STD, handlers.CV_METRIC, handlers.EVALUATION_URI}
    assert not extra & set(HYPERPARAMETERS)


def _imports(source: str) -> set[str]:
    """What the module imports when it runs (an `if TYPE_CHECKING:` block never runs)."""
    tree = ast.parse(source)
    type_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                 and isinstance(block.test, ast.Name) and block.test.id == "TYPE_CHECKING"
                 for statement in block.body for n in ast.walk(statement)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_zip_is_import_closed_over_stdlib_and_boto3():
    package = lambda_deploy.build_zip()
    with zipfile.ZipFile(io.BytesIO(package)) as archive:
        files = set(archive.namelist())
        assert files == set(lambda_deploy.LAMBDA_FILES)
        modules = {f[:-3].replace("/", ".").removesuffix(".__init__") for f in files}
        for name in files:
            for imported in _imports(archive.read(name).decode()):
                top = imported.split(".")[0]
                if top == "warmcv":
                    # `from warmcv.aws import tags` names a module or an attribute: one of them must be shipped
                    assert imported in modules or imported.rsplit(".", 1)[0] in modules, (name, imported)
                else:
                    assert top in sys.stdlib_module_names or top in LAMBDA_RUNTIME_PACKAGES or top == "__future__", \
                        (name, imported)
    assert lambda_deploy.build_zip() == package  # deterministic: same CodeSha256 for the same sources


RUN_IN_LAMBDA_LIKE_PROCESS = r'''
import importlib.abc, io, json, sys
ALLOWED = set(sys.stdlib_module_names) | {"boto3", "botocore", "jmespath", "dateutil", "urllib3", "s3transfer",
                                          "six", "warmcv", "__future__"}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] not in ALLOWED:
            raise ImportError(f"{name} is not available in AWS Lambda's Python runtime")
        return None
sys.meta_path.insert(0, Block())
zipdir = sys.argv[1]
sys.path.insert(0, zipdir)
import boto3
from botocore.stub import Stubber
from warmcv.launcher import handlers
loaded = {n: getattr(m, "__file__", "") for n, m in sys.modules.items() if n.split(".")[0] == "warmcv"}
assert all(f.startswith(zipdir) for f in loaded.values()), loaded
banned = [n for n in sys.modules if n.split(".")[0] in {"pandas", "numpy", "lightgbm", "sagemaker", "sklearn", "pyarrow"}]
assert not banned, banned
sm = boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
with Stubber(sm) as stub:
    stub.add_response("list_training_jobs", {"TrainingJobSummaries": []})
    handlers._clients = lambda *services: [sm]
    print(json.dumps(handlers.release_warm_pools({"training_job_names": "final-job"}, None)))
'''


def test_handlers_run_with_only_the_lambda_runtime(tmp_path: Path):
    with zipfile.ZipFile(io.BytesIO(lambda_deploy.build_zip())) as archive:
        archive.extractall(tmp_path / "lambda")
    env = subprocess_env()
    env.pop("PYTHONPATH")  # the zip alone must provide warmcv
    result = subprocess.run([sys.executable, "-c", RUN_IN_LAMBDA_LIKE_PROCESS, str(tmp_path / "lambda")],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"released": 0, "already_gone": 0, "released_jobs": ""}
    for function in lambda_deploy.functions("a", "b"):
        module, _, attr = function.handler_path.rpartition(".")
        assert module == "warmcv.launcher.handlers" and callable(getattr(handlers, attr))
