"""The driver strategy on the fake SageMaker: a driver job (mode=driver, a real container process) runs a whole
search, creating every trial's fold jobs (real worker processes) through boto3, with its study checkpointed in
moto's S3 through the job's CheckpointConfig.

What must hold: the best CV equals a local `warmcv run` on the same folds, space and seed; a driver killed
mid-search and run again (SageMaker's RetryStrategy: the same job, its checkpoint copied back) loses no
finished trial and creates no fold job twice; a stopped driver stops its folds.
"""

from __future__ import annotations

import collections
import re
import sqlite3
import time
from pathlib import Path

import pytest

from tests.fakes.harness import (
    BUCKET,
    FAST_TIMING,
    driver_request,
    fake_factory,
    read_json,
    s3_with_bucket,
    upload_prepared,
)
from tests.fakes.sagemaker import FakeSageMaker, Fault
from warmcv.aws import tags as tag_keys
from warmcv.declarations import TUNING_SEARCHED
from warmcv.errors import UserInputError

pytestmark = pytest.mark.timeout(420)

SPACE = {"num_leaves": (8, 64, "log"), "learning_rate": (0.05, 0.3, "log")}
SEARCH = "learning_rate=0.05:0.3:log;num_leaves=8:64:log"


@pytest.fixture(scope="module")
def s3():
    with s3_with_bucket() as server:
        yield server


@pytest.fixture(scope="module")
def data_uri(s3, prepared_census):
    return upload_prepared(s3, prepared_census, prefix="prepared-driver")


@pytest.fixture
def make_fake(s3, tmp_path):
    with fake_factory(s3.url, tmp_path) as make:
        yield make


def fold_creates(fake: FakeSageMaker, run: str) -> collections.Counter:
    """Successful CreateTrainingJob calls per fold-job name of the run."""
    return collections.Counter(c.name for c in fake.calls if c.operation == "CreateTrainingJob" and c.outcome == "OK"
                               and c.name.startswith(run + "-t"))


def completed(fake: FakeSageMaker, name: str, timeout: float = 300) -> None:
    job = fake.wait(name, timeout)
    assert job.status == "Completed", f"{name}: {job.status} {job.failure_reason}\n{fake.log(name)[-6000:]}"


def live_log(fake: FakeSageMaker, name: str) -> str:
    """The running attempt's log (the fake keeps a job's log in its attempt's folder while it runs)."""
    job = fake.jobs[name]
    path = job.bases[-1].parent / "log.txt" if job.bases else None
    return path.read_text(errors="replace") if path and path.exists() else ""


def test_the_drivers_best_cv_equals_a_local_run_on_the_same_folds_space_and_seed(make_fake, s3, data_uri, census_csv,
                                                                               tmp_path):
    import warmcv

    fake = make_fake()
    request = driver_request("drv-equal", data_uri, {"trials": "4", "parallel_trials": "2", "sampler_seed": "7",
                                                     "search": SEARCH, "early_stopping_rounds": "0"})
    fake.client().create_training_job(**request)
    completed(fake, "drv-equal")
    result = read_json(s3, f"s3://{BUCKET}/evaluation/drv-equal/driver_result.json")
    statistics = read_json(s3, f"s3://{BUCKET}/evaluation/drv-equal/cv_statistics.json")

    # No coordinator: every trial's K fold jobs were created by the driver, named after the run and the trial.
    creates = fold_creates(fake, "drv-equal")
    assert sorted(creates) == [f"drv-equal-t{t:04d}-f{f}" for t in range(4) for f in range(3)]
    assert set(creates.values()) == {1}
    tags = {t["Key"]: t["Value"] for t in fake.jobs["drv-equal-t0002-f1"].request["Tags"]}
    assert tags[tag_keys.TUNING_JOB] == "drv-equal" and tags[tag_keys.PARENT_JOB] == "drv-equal-t0002"
    fold = fake.jobs["drv-equal-t0002-f1"].request
    assert fold["ResourceConfig"]["InstanceType"] == "ml.m5.xlarge"  # the fold type, not the driver's ml.m5.large
    assert "CheckpointConfig" not in fold and fold["HyperParameters"]["mode"] == "worker"
    assert not {"trials", "search", "sampler_seed", "fold_instance_type"} & set(fold["HyperParameters"])
    # After the first two trials (one round of two in flight), the folds started on the first ones' warm pools.
    assert sum(fake.jobs[n].model.warm for n in creates) >= 6

    local = warmcv.tune(census_csv, target="income", folds=3, split_seed=5, trials=4, parallel=2, workers=2, seed=7,
                        search=SPACE, exclude=[n for n in TUNING_SEARCHED if n not in SPACE],
                        fixed={"num_threads": 1, "num_boost_round": 30, "early_stopping_rounds": 0},
                        out=tmp_path / "local", progress=False)
    assert result["cv_mean"] == pytest.approx(local.best_score, rel=1e-9)
    assert result["cv_std"] == pytest.approx(local.best_std, rel=1e-6)
    assert result["best_trial"] == local.best_trial
    assert {k: result["tuned"][k] for k in SPACE} == {k: local.best_hyperparameters[k] for k in SPACE}
    assert statistics["binary_classification_metrics"]["auc"]["value"] == result["cv_mean"]
    assert result["final_hyperparameters"]["mode"] == "worker" and result["final_hyperparameters"]["fold"] == "all"
    assert "average model validation score:" in fake.log("drv-equal")


def study_trials(path: Path) -> dict[int, tuple[str, float | None]]:
    """trial number -> (state, value) from a study snapshot (SQLite, Optuna's schema)."""
    with sqlite3.connect(path) as connection:
        rows = connection.execute("SELECT t.number, t.state, v.value FROM trials t LEFT JOIN trial_values v "
                                  "ON v.trial_id = t.trial_id").fetchall()
    return {number: (state, value) for number, state, value in rows}


def test_a_killed_driver_resumes_losing_no_trial_and_creating_no_fold_job_twice(make_fake, s3, data_uri, tmp_path):
    fake = make_fake()
    # Trials 2 and 3 take a while to start, so the kill finds their fold jobs running.
    fake.faults.append(Fault(lambda r: bool(re.search(r"-t000[23]-f", r["TrainingJobName"])), start_delay=12))
    fake.client().create_training_job(**driver_request(
        "drv-kill", data_uri, {"trials": "6", "parallel_trials": "2", "sampler_seed": "3", "search": SEARCH}))
    fake.wait_until(lambda: len([n for n in fold_creates(fake, "drv-kill") if "-t0003-" in n]) == 3, timeout=240)
    before = live_log(fake, "drv-kill")
    finished = {int(n): float(v) for n, v in re.findall(r"trial (\d+) complete: CV auc ([0-9.]+)", before)}
    assert finished.keys() == {0, 1}, before[-3000:]
    fake.restart("drv-kill")  # SIGKILL; SageMaker's RetryStrategy runs the job again, its checkpoints copied back
    completed(fake, "drv-kill")
    driver = fake.jobs["drv-kill"]
    assert driver.attempts == 2
    second = driver.logs[-1]
    assert "resuming the study from checkpoint" in second
    assert len(re.findall(r"taking it up again", second)) == 2  # trials 2 and 3, under their own numbers
    assert second.count("adopted existing training job") == 6  # their six fold jobs, found again

    creates = fold_creates(fake, "drv-kill")
    assert sorted(creates) == [f"drv-kill-t{t:04d}-f{f}" for t in range(6) for f in range(3)]
    assert set(creates.values()) == {1}, "a fold job was created twice"
    snapshots = sorted(k for k in (o["Key"] for o in s3.client().list_objects_v2(
        Bucket=BUCKET, Prefix="checkpoints/drv-kill/").get("Contents", [])) if k.endswith(".db"))
    assert 1 <= len(snapshots) <= 3  # old snapshots are pruned
    local = tmp_path / "study.db"
    s3.client().download_file(BUCKET, snapshots[-1], str(local))
    trials = study_trials(local)
    assert sorted(trials) == list(range(6)) and {s for s, _ in trials.values()} == {"COMPLETE"}
    for number, value in finished.items():  # what finished before the kill is in the final study, unchanged
        assert trials[number][1] == pytest.approx(value, abs=5e-7)
    result = read_json(s3, f"s3://{BUCKET}/evaluation/drv-kill/driver_result.json")
    assert result["trials"] == {"complete": 6, "failed": 0, "pruned": 0}


def test_a_stopped_driver_stops_every_fold_it_started(make_fake, data_uri):
    # The image's real entry: the sagemaker-training toolkit running warmcv.modes.entry:train in-process.
    fake = make_fake(command="toolkit")
    fake.faults.append(Fault(lambda r: (r.get("HyperParameters") or {}).get("mode") == "worker", start_delay=60))
    client = fake.client()
    client.create_training_job(**driver_request("drv-stop", data_uri, {"trials": "4", "parallel_trials": "2",
                                                                      "search": SEARCH}))
    fake.wait_until(lambda: len(fold_creates(fake, "drv-stop")) == 6, timeout=120)
    signalled = time.monotonic()
    client.stop_training_job(TrainingJobName="drv-stop")  # SIGTERM to the driver
    driver = fake.wait("drv-stop", 60)
    assert driver.status == "Stopped" and driver.exit_codes == [1], fake.log("drv-stop")[-3000:]
    assert time.monotonic() - signalled < 30
    failure = (driver.bases[-1] / "output" / "failure").read_text()
    assert failure.startswith("Stopped: received SIGTERM")
    for name in fold_creates(fake, "drv-stop"):
        assert fake.count("StopTrainingJob", "OK", prefix=name) == 1
        assert fake.wait(name, 30).status == "Stopped"


def seed_for(pattern: list[str], search: str) -> int:
    """A random-sampler seed whose first trials draw min_data_in_leaf as `pattern` says ("good" or "1000")."""
    import optuna

    from warmcv.declarations import build_search_space
    from warmcv.tuning.space import distributions, make_sampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = distributions(build_search_space([], search.split(";")))
    for seed in range(1000):
        study = optuna.create_study(direction="maximize", sampler=make_sampler("random", seed))
        drawn = [study.ask(space).params["min_data_in_leaf"] for _ in pattern]
        good = [d for d, want in zip(drawn, pattern, strict=True) if want == "good"]
        if all((d == "1000") == (want == "1000") for d, want in zip(drawn, pattern, strict=True)) \
                and len(set(good)) == len(good):
            return seed
    raise AssertionError("no seed draws that pattern")


def test_a_hopeless_trial_is_pruned_after_its_first_fold_and_its_other_folds_stopped(make_fake, s3, data_uri):
    # min_data_in_leaf=1000 on these 1,333 training rows allows no split: an AUC of 0.5 against about 0.9.
    search = "min_data_in_leaf=1,5,1000"
    seed = seed_for(["good", "good", "1000"], search)
    fake = make_fake()
    # Trial 2's folds 1 and 2 start late, so its fold 0 is in first: the check after it must stop them.
    fake.faults.append(Fault(lambda r: bool(re.search(r"-t0002-f[12]$", r["TrainingJobName"])), start_delay=25))
    fake.client().create_training_job(**driver_request("drv-prune", data_uri, {
        "trials": "3", "parallel_trials": "1", "sampler": "random", "sampler_seed": str(seed), "search": search,
        "early_stopping_rounds": "0", "prune": "true", "prune_min_trials": "2"}))
    completed(fake, "drv-prune")
    log = fake.log("drv-prune")
    assert re.search(r"trial 2: pruned after 1 of 3 folds \(paired-bound\): after 1 of 3 folds the chance to beat "
                     r"trial #\d is 0 \(< 0\.1\)", log), log[-4000:]
    for fold in ("drv-prune-t0002-f1", "drv-prune-t0002-f2"):
        assert fake.count("StopTrainingJob", "OK", prefix=fold) == 1
        assert fake.jobs[fold].status == "Stopped"
    assert fake.jobs["drv-prune-t0002-f0"].status == "Completed"
    result = read_json(s3, f"s3://{BUCKET}/evaluation/drv-prune/driver_result.json")
    assert result["trials"] == {"complete": 2, "failed": 0, "pruned": 1}
    assert result["tuned"]["min_data_in_leaf"] in ("1", "5")



def test_the_fake_copies_checkpoints_as_sagemaker_documents(make_fake, s3, tmp_path):
    """rules.CHECKPOINTS: the S3 location's files are in the local path when a job starts, files written there
    reach S3 while it runs, and a file deleted there is deleted in S3."""
    from types import SimpleNamespace

    fake = make_fake()
    client = s3.client()
    client.put_object(Bucket=BUCKET, Key="ckpt/x/old.db", Body=b"old")
    client.put_object(Bucket=BUCKET, Key="ckpt/x/keep.db", Body=b"keep")
    job = SimpleNamespace(request={"CheckpointConfig": {"S3Uri": f"s3://{BUCKET}/ckpt/x"}}, checkpoints={})
    base = tmp_path / "ml"
    fake._restore_checkpoints(job, base)
    local = base / "checkpoints"  # the default LocalPath, /opt/ml/checkpoints, under the job's base dir
    assert (local / "old.db").read_bytes() == b"old" and (local / "keep.db").read_bytes() == b"keep"
    (local / "old.db").unlink()
    (local / "new.db").write_bytes(b"new")
    fake._sync_checkpoints(job, base, job.checkpoints)
    assert sorted(o["Key"] for o in client.list_objects_v2(Bucket=BUCKET, Prefix="ckpt/x/")["Contents"]) == [
        "ckpt/x/keep.db", "ckpt/x/new.db"]
    moved = SimpleNamespace(request={"CheckpointConfig": {"S3Uri": f"s3://{BUCKET}/ckpt/y",
                                                          "LocalPath": "/opt/ml/state"}}, checkpoints={})
    (base / "state").mkdir()
    (base / "state" / "a.db").write_bytes(b"a")
    fake._sync_checkpoints(moved, base, moved.checkpoints)
    assert client.get_object(Bucket=BUCKET, Key="ckpt/y/a.db")["Body"].read() == b"a"


def test_the_driver_runs_from_a_users_machine_and_resumes_from_its_run_folder(make_fake, s3, data_uri, tmp_path,
                                                                             monkeypatch):
    """`warmcv tune --sagemaker --strategy driver`: the search here, its fold jobs on (the fake) SageMaker."""
    import boto3

    from tests.launcher.conftest import example_config
    from warmcv.aws.clients import CoordinatorClients
    from warmcv.launcher import local_driver

    fake = make_fake()
    config = example_config(
        s3={"prepared": data_uri, "root": f"s3://{BUCKET}/here"}, prepare={"folds": 3},
        tuning={"strategy": "driver", "parallel_trials": 2, "rounds": 1, "max_trials_without_improvement": 0,
                "complete_on_convergence": False, "ranges": ["num_leaves=8:64:log"], "tune": ["num_leaves"]},
        hyperparameters={"num_boost_round": 30, "early_stopping_rounds": 0, "num_threads": 1})
    s3_client = boto3.client("s3", endpoint_url=s3.url, region_name="us-east-1", aws_access_key_id="testing",
                             aws_secret_access_key="testing")
    clients = CoordinatorClients(patient=fake.client(), prompt=fake.client(connect_timeout=3), s3=s3_client,
                                 creator=fake.client())
    monkeypatch.setenv("WARMCV_SAGEMAKER_TIMING", FAST_TIMING)
    result = local_driver.run_here(config, tmp_path / "run", job_name="here-1", clients=clients)
    creates = fold_creates(fake, "here-1")
    assert sorted(creates) == [f"here-1-t{t:04d}-f{f}" for t in range(2) for f in range(3)]
    fold = fake.jobs["here-1-t0000-f0"].request
    assert fold["OutputDataConfig"]["S3OutputPath"] == f"s3://{BUCKET}/here/tuning"
    assert fold["AlgorithmSpecification"]["TrainingImage"] == config.image_uri
    assert result["trials"]["complete"] == 2 and (tmp_path / "run" / "driver_result.json").is_file()
    again = local_driver.run_here(config, tmp_path / "run", clients=clients)  # the same folder: resumed, done
    assert again["best_trial"] == result["best_trial"] and fold_creates(fake, "here-1") == creates
    with pytest.raises(UserInputError, match="holds run 'here-1', not 'here-2'"):
        local_driver.run_here(config, tmp_path / "run", job_name="here-2", clients=clients)


def test_the_driver_logs_its_trials_to_mlflow_when_its_environment_names_a_server(make_fake, s3, data_uri, tmp_path):
    """Like the coordinators (issue 14): a parent run for the driver's run, a nested run per trial, the best
    trial tagged, the result on the parent (here against an MLflow store in a file; on SageMaker the launcher
    passes the tracking server's ARN in the job's environment)."""
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    fake = make_fake(child_env={"WARMCV_SAGEMAKER_TIMING": FAST_TIMING, "MLFLOW_TRACKING_URI": uri,
                                "MLFLOW_EXPERIMENT_NAME": "driver-runs"})
    fake.client().create_training_job(**driver_request(
        "drv-mlflow", data_uri, {"trials": "3", "parallel_trials": "2", "sampler_seed": "1", "search": SEARCH}))
    completed(fake, "drv-mlflow")
    result = read_json(s3, f"s3://{BUCKET}/evaluation/drv-mlflow/driver_result.json")
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("driver-runs")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("warmcv.role") == "study"]
    trials = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    assert len(parents) == 1 and len(trials) == 3
    assert {r.data.tags["mlflow.parentRunId"] for r in trials} == {parents[0].info.run_id}
    [best] = [r for r in trials if r.data.tags.get("warmcv.best") == "true"]
    assert best.data.tags["warmcv.trial"] == str(result["best_trial"])
    parent = client.get_run(parents[0].info.run_id)
    assert parent.info.status == "FINISHED" and parent.data.metrics["cv_mean"] == pytest.approx(result["cv_mean"])
