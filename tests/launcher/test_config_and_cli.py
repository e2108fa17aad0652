"""The launcher config (TOML + overrides, validated through the declarations) and the CLI without the SDK."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import subprocess_env
from tests.launcher.conftest import EXAMPLE, example_config
from warmcv.cli import build_parser
from warmcv.cli.launcher import SDK_MISSING, config_from_args
from warmcv.declarations import TUNING_FIXED, TUNING_SEARCHED, build_search_space
from warmcv.errors import UserInputError


def test_example_config_derives_everything_from_the_declarations(config):
    assert config.max_jobs == 4 * 10
    assert config.metric == "auc"
    space = config.search_space()
    # what warmcv run searches, except what [hyperparameters] fixes (num_boost_round and early stopping are)
    assert set(space) == set(TUNING_SEARCHED)
    assert space["num_leaves"] == build_search_space(["num_leaves"], ["num_leaves=16:128:log"])["num_leaves"]
    coordinator = config.coordinator_hyperparameters()
    assert coordinator["mode"] == "coordinator" and coordinator["fold_runner"] == "sagemaker"
    assert coordinator["n_folds"] == "5" and coordinator["keep_alive_seconds"] == "900"
    worker = config.worker_hyperparameters()
    assert worker["mode"] == "worker" and worker["fold"] == "all" and "fold_runner" not in worker
    assert config.final_from_tuning()[-1] == "num_boost_round"  # early stopping: rounds come from the CV


@pytest.mark.parametrize("overrides, message", [
    ({"tuning": {"strategy": "Genetic"}}, "tuning.strategy = 'Genetic': one of 'amt', 'driver'"),
    ({"tuning": {"search_strategy": "Genetic"}},
     "tuning.search_strategy = 'Genetic': one of 'Bayesian', 'Random', 'Hyperband', 'Grid'"),
    ({"tuning": {"parallel_trials": 50, "rounds": 20}}, "M x N = 50 x 20 = 1000"),
    ({"training": {"keep_alive_seconds": 7200}}, "training.keep_alive_seconds = 7200: must be at most 3600"),
    ({"aws": {"role_arn": "warmcv-jobs"}}, "aws.role_arn 'warmcv-jobs' must be a full IAM role ARN"),
    ({"s3": {"root": "my-bucket/x"}}, "s3.root 'my-bucket/x' must be an s3://"),
    ({"tuning": {"ranges": ["num_leaves=1:99999999"]}}, "num_leaves"),
    ({"tuning": {"tune": ["mode"]}}, "'mode' cannot be tuned"),
    ({"hyperparameters": {"num_leave": 31}}, "did you mean 'num_leaves'"),
    ({"hyperparameters": {"n_folds": 3}}, "set by the launcher"),
    ({"tuning": {"tune": ["num_boost_round"]}}, "both static and tuned"),
    ({"tuning": {"rounds": "many"}}, "tuning.rounds = 'many': expected an integer"),
    ({"tuning": {"roundz": 3}}, "tuning.roundz: unknown key (did you mean 'rounds'?)"),
    ({"hyperparameters": {"metric": "auto"}, "prepare": {"task": "auto"}}, "needs the objective's direction"),
    ({"image_uri": "warmcv"}, "must be a full ECR image URI"),
])
def test_bad_config_names_the_key(overrides, message):
    with pytest.raises(UserInputError) as error:
        example_config(**overrides)
    assert message in str(error.value)


def test_coordinator_trains_fold_zero_unless_the_config_says_otherwise():
    assert example_config().coordinator_hyperparameters()["coordinator_trains_fold"] == "true"
    opted_out = example_config(hyperparameters={"coordinator_trains_fold": False})
    assert opted_out.coordinator_hyperparameters()["coordinator_trains_fold"] == "false"


def test_metric_from_task_when_not_given():
    config = example_config(hyperparameters={"metric": "auto"}, prepare={"task": "regression"})
    assert config.metric == "rmse" and config.coordinator_hyperparameters()["metric"] == "rmse"


def test_command_line_overrides_win():
    args = build_parser().parse_args([
        "pipeline", "definition", "--config", str(EXAMPLE), "--parallel-trials", "3", "--rounds", "7",
        "--folds", "10", "--strategy", "Random", "--keep-alive", "1800", "--range", "learning_rate=0.01:0.1:log",
        "--set", "max_depth=6", "--early-stopping-rounds", "20", "--image-uri",
        "111122223333.dkr.ecr.us-east-1.amazonaws.com/warmcv:abc123", "--seed", "0", "--no-release-warm-pools",
        "--target-objective", "0.9", "--complete-on-convergence"])
    config = config_from_args(args)
    assert (config.max_jobs, config.prepare.folds, config.tuning.search_strategy) == (21, 10, "Random")
    assert config.tuning.strategy == "amt"  # --strategy Random is read as it always was: the tuner, Random search
    assert config.training.keep_alive_seconds == 1800 and config.tuning.seed == 0
    assert config.tuning.ranges == ["learning_rate=0.01:0.1:log"]  # replaces the file's list
    assert config.hyperparameters["max_depth"] == "6" and config.hyperparameters["early_stopping_rounds"] == "20"
    assert "max_depth" not in config.search_space()
    assert config.image_uri.endswith(":abc123") and not config.pipeline.release_warm_pools
    assert config.tuning.target_objective_value == 0.9 and config.tuning.complete_on_convergence


BLOCK_SDK = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "sagemaker":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Block())
from warmcv.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _cli_without_sdk(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK_SDK, *argv], capture_output=True, text=True,
                          env=subprocess_env(), timeout=120)


@pytest.mark.parametrize("argv", [["pipeline", "definition"], ["pipeline", "upsert"],
                                  ["tune", "--sagemaker", "--prepared", "s3://my-bucket/prepared/"]])
def test_sdk_commands_say_what_to_install(argv):
    result = _cli_without_sdk(*argv, "--config", str(EXAMPLE))
    assert result.returncode == 2, result.stderr
    assert SDK_MISSING in result.stderr and 'pip install "warmcv[launcher]"' in result.stderr
    assert "Traceback" not in result.stderr


def test_rest_of_the_cli_works_without_the_sdk(tmp_path):
    result = _cli_without_sdk("pipeline", "iam", "--config", str(EXAMPLE), "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "job-role.json").read_text())["Statement"]
    assert _cli_without_sdk("hyperparameters").returncode == 0
    result = _cli_without_sdk("release-warm-pools", "--region", "us-east-1")
    assert result.returncode == 2 and "--execution, --tuning-job" in result.stderr


def test_grid_needs_listed_values():
    with pytest.raises(UserInputError, match="Grid takes listed values only"):
        example_config(tuning={"strategy": "Grid"})
    config = example_config(tuning={"strategy": "Grid", "tune": ["num_leaves", "max_depth"],
                                    "ranges": ["num_leaves=31,63,127", "max_depth=4,8"]})
    assert config.search_space()["num_leaves"].choices == ("31", "63", "127")
    with pytest.raises(UserInputError, match="num_leaves"):
        example_config(tuning={"strategy": "Grid", "tune": ["num_leaves"], "ranges": ["num_leaves=1,63"]})


def test_pipeline_needs_batch_input_when_transforming(tmp_path):
    config = tmp_path / "no-batch.toml"
    config.write_text(EXAMPLE.read_text().replace('batch_input = "s3://my-bucket/census/score/"', ""))
    result = _cli_without_sdk("pipeline", "definition", "--config", str(config))
    assert result.returncode == 2 and "config: set s3.batch_input" in result.stderr


def test_sagemaker_searches_and_fixes_what_warmcv_run_does():
    """With nothing said, the tuner searches warmcv run's default space and holds its fixed values."""
    from warmcv.launcher.config import load_config, read_config_file
    from warmcv.tuning.run_settings import resolve_fixed
    from warmcv.tuning.space import resolve_space

    raw = read_config_file(EXAMPLE)
    raw["hyperparameters"] = {"metric": "auc"}
    raw["tuning"]["ranges"] = []
    config = load_config(raw)
    assert config.search_space() == resolve_space()
    coordinator = config.coordinator_hyperparameters()
    assert {k: coordinator[k] for k in TUNING_FIXED} == resolve_fixed({}, resolve_space()) == TUNING_FIXED
    assert config.final_from_tuning()[-1] == "num_boost_round"  # early stopping is on: rounds come from the CV
    assert config.worker_hyperparameters()["early_stopping_rounds"] == TUNING_FIXED["early_stopping_rounds"]


@pytest.mark.parametrize("range_, message", [
    ("num_leaves=8:64:reverselog", "ReverseLogarithmic scaling is for continuous ranges only"),
    ("feature_fraction=0.4:1:reverselog", "ReverseLogarithmic scaling needs a range within 0 <= x < 1"),
    ("lambda_l1=0:1:log", "Logarithmic scaling needs a low end above 0"),
])
def test_scaling_sagemaker_refuses_is_refused_when_the_definition_is_built(range_, message):
    with pytest.raises(UserInputError, match=message):
        example_config(tuning={"ranges": [range_]})
    assert example_config(tuning={"ranges": ["feature_fraction=0.4:0.99:reverselog"]}).search_space()[
        "feature_fraction"].range.scaling == "ReverseLogarithmic"


def test_tune_job_name_is_checked_against_sagemakers_32_characters(capsys):
    from warmcv.cli import main

    code = main(["tune", "--sagemaker", "--config", str(EXAMPLE), "--prepared", "s3://my-bucket/p/",
                 "--job-name", "warmcv-a-very-long-tuning-job-name-2026", "--dry-run"])
    assert code == 2
    assert "tuning job name 'warmcv-a-very-long-tuning-job-name-2026' (39 characters)" in capsys.readouterr().err


# -- the driver strategy -------------------------------------------------------------------------------------------
NO_TUNER_CRITERIA = {"max_trials_without_improvement": 0, "complete_on_convergence": False}


def driver_config(**tuning):
    return example_config(tuning={"strategy": "driver", **NO_TUNER_CRITERIA, **tuning})


def test_strategy_names_who_runs_the_trials_and_old_configs_keep_their_meaning():
    assert example_config().tuning.strategy == "amt"  # the example says strategy = "Bayesian", as before
    assert example_config().tuning.search_strategy == "Bayesian"
    random = example_config(tuning={"strategy": "Random"})
    assert (random.tuning.strategy, random.tuning.search_strategy) == ("amt", "Random")
    both = example_config(tuning={"strategy": "driver", "search_strategy": "Random", **NO_TUNER_CRITERIA})
    assert (both.tuning.strategy, both.tuning.search_strategy) == ("driver", "Random")
    # A file's old `strategy = "Bayesian"` with --search-strategy Random on the command line: the newer key wins.
    overridden = example_config(tuning={"search_strategy": "Random"})
    assert (overridden.tuning.strategy, overridden.tuning.search_strategy) == ("amt", "Random")


@pytest.mark.parametrize("tuning, message", [
    ({"search_strategy": "Hyperband"}, "tuning.search_strategy Hyperband is the tuner's; the driver samples with "
                                       "Optuna: Bayesian (TPE, as warmcv run) or Random"),
    ({"search_strategy": "Grid"}, "the driver samples with Optuna"),
    ({"early_stopping": "Auto"}, "tuning.early_stopping Auto is the tuner's early stopping"),
    ({"max_trials_without_improvement": 20}, "tuning.max_trials_without_improvement are the tuner's completion"),
    ({"target_objective_value": 0.9}, "tuning.target_objective_value are the tuner's completion criteria"),
    ({"driver_instance_type": "m5.large"}, "tuning.driver_instance_type 'm5.large' is not like ml.m5.large"),
    ({"ranges": ["feature_fraction=0.4:0.99:reverselog"]}, "ReverseLogarithmic scaling (feature_fraction) is "
                                                           "SageMaker's tuner's"),
    ({"driver_max_runtime_seconds": 60}, "tuning.driver_max_runtime_seconds = 60: must be at least 3600"),
])
def test_driver_config_that_cannot_work_is_refused(tuning, message):
    with pytest.raises(UserInputError) as error:
        example_config(tuning={"strategy": "driver", **NO_TUNER_CRITERIA, **tuning})
    assert message in str(error.value)


def test_the_driver_has_no_tuning_job_limit_on_trials():
    with pytest.raises(UserInputError, match="SageMaker allows at most 500 per tuning job"):
        example_config(tuning={"parallel_trials": 10, "rounds": 60})
    assert driver_config(parallel_trials=10, rounds=60).max_jobs == 600


def test_the_driver_searches_and_fixes_what_the_tuner_does():
    """The driver job's hyperparameters make the same trials as the tuner's: same space, same static values."""
    from warmcv.declarations import parse_hyperparameters
    from warmcv.tuning.driver import DriverPlan

    config = driver_config(search_strategy="Random", seed=9)
    hyperparameters = config.driver_hyperparameters()
    assert hyperparameters["mode"] == "driver" and hyperparameters["sampler"] == "random"
    assert (hyperparameters["trials"], hyperparameters["parallel_trials"], hyperparameters["sampler_seed"]) == \
        ("40", "4", "9")
    assert hyperparameters["fold_instance_type"] == config.training.instance_type
    plan = DriverPlan.from_hyperparameters(parse_hyperparameters(hyperparameters))
    assert plan.space == config.search_space()
    coordinator = example_config().coordinator_hyperparameters()
    trial_static = {k: v for k, v in coordinator.items()
                    if k not in ("mode", "fold_runner", "coordinator_trains_fold")}
    assert plan.fixed == trial_static


def test_tune_with_the_driver_dry_run_prints_the_plan_offline(capsys):
    from warmcv.cli import main

    code = main(["tune", "--sagemaker", "--config", str(EXAMPLE), "--prepared", "s3://my-bucket/prepared/x/",
                 "--strategy", "driver", "--max-trials-without-improvement", "0", "--no-complete-on-convergence",
                 "--job-name", "warmcv-demo", "--dry-run"])
    assert code == 0
    plan = json.loads(capsys.readouterr().out)
    fold = plan["fold_job"]
    assert fold["TrainingJobName"] == "warmcv-demo-t0000-f0"
    assert fold["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] == "s3://my-bucket/prepared/x/"
    assert fold["ResourceConfig"]["KeepAlivePeriodInSeconds"] == 900
    assert {t["Key"]: t["Value"] for t in fold["Tags"]}["warmcv:tuning-job"] == "warmcv-demo"
    assert plan["driver_hyperparameters"]["mode"] == "driver"


@pytest.mark.parametrize("tuning, message", [
    ({"prune": True}, "tuning.prune is the driver's fold-level pruning; with the tuner, stop hopeless trials with "
                      "tuning.early_stopping"),
    ({"search_strategy": "Hyperband", "hyperband_max_resource": 8},
     "tuning.hyperband_max_resource = 8: a trial reports 5 values (its running CV mean after each of the 5 folds)"),
    ({"search_strategy": "Hyperband", "hyperband_min_resource": 6}, "tuning.hyperband_min_resource = 6 is above the "
                                                                    "maximum resource 5"),
])
def test_tuner_early_stopping_config_that_cannot_work_is_refused(tuning, message):
    with pytest.raises(UserInputError) as error:
        example_config(tuning={**NO_TUNER_CRITERIA, **tuning})
    assert message in str(error.value)


@pytest.mark.parametrize("tuning, prepare, message", [
    ({"prune_rule": "wilcoxon"}, {"folds": 3}, "prune_rule=wilcoxon with 3 folds: after 2 of them the test's smallest "
                                               "p-value is 0.25, not below prune_threshold=0.1"),
    ({"prune_min_trials": 40}, {}, "prune_min_trials=40 completed trials must come first, but the search runs only 40"),
])
def test_driver_pruning_that_could_never_prune_is_refused(tuning, prepare, message):
    with pytest.raises(UserInputError) as error:
        example_config(tuning={"strategy": "driver", "prune": True, **NO_TUNER_CRITERIA, **tuning}, prepare=prepare)
    assert message in str(error.value)


def test_driver_pruning_settings_reach_the_driver():
    from warmcv.declarations import parse_hyperparameters
    from warmcv.tuning.driver import DriverPlan, Pruning

    config = driver_config(prune=True, prune_rule="wilcoxon", prune_threshold=0.2, prune_min_trials=3)
    plan = DriverPlan.from_hyperparameters(parse_hyperparameters(config.driver_hyperparameters()))
    assert plan.pruning == Pruning("wilcoxon", 0.2, 3)
    assert DriverPlan.from_hyperparameters(parse_hyperparameters(driver_config().driver_hyperparameters())).pruning \
        is None
    pruner = plan.pruner("Maximize", 5)
    assert pruner is not None and (pruner.rule.name, pruner.min_trials, pruner.n_folds) == ("wilcoxon", 3, 5)
    with pytest.raises(UserInputError, match="with 3 folds"):  # the folds are checked again when the data is known
        plan.pruner("Maximize", 3)


def test_the_driver_example_config_is_valid_and_prunes():
    from warmcv.launcher.config import load_config, read_config_file

    config = load_config(read_config_file(EXAMPLE.with_name("pipeline-driver.toml")))
    assert (config.tuning.strategy, config.tuning.search_strategy, config.tuning.prune) == ("driver", "Bayesian", True)
    hyperparameters = config.driver_hyperparameters()
    assert hyperparameters["prune"] == "true" and hyperparameters["trials"] == "40"
