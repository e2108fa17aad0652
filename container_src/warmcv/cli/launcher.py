"""`warmcv pipeline ...`, `warmcv tune --sagemaker` and `warmcv release-warm-pools`: running on SageMaker.

Importing this module needs neither the SageMaker SDK nor AWS credentials: the commands that build the
pipeline or the tuner load the SDK when they run and, if it is missing, say exactly what to install.
`pipeline iam`, `pipeline deploy-lambdas` and `release-warm-pools` need only boto3.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

from warmcv.errors import UserInputError

# (option, config section or None for top level, key, argparse kwargs)
_OVERRIDES: tuple[tuple[str, str | None, str, dict[str, Any]], ...] = (
    ("--image-uri", None, "image_uri", {"help": "the image (printed by docker/build_and_push.sh)"}),
    ("--region", "aws", "region", {}),
    ("--role-arn", "aws", "role_arn", {"help": "role of every job (and of the coordinator)"}),
    ("--pipeline-role-arn", "aws", "pipeline_role_arn", {}),
    ("--lambda-role-arn", "aws", "lambda_role_arn", {}),
    ("--input", "s3", "input", {"help": "raw data: s3://bucket/prefix"}),
    ("--s3-root", "s3", "root", {"help": "everything the run writes goes under this s3:// prefix"}),
    ("--batch-input", "s3", "batch_input", {"help": "data the batch transform predicts: features only"}),
    ("--prepared", "s3", "prepared", {"help": "tune --sagemaker: prepared data already on S3"}),
    ("--target", "prepare", "target", {}),
    ("--folds", "prepare", "folds", {"type": int, "metavar": "K"}),
    ("--task", "prepare", "task", {}),
    ("--id-columns", "prepare", "id_columns", {"metavar": "NAMES",
                                                "help": "comma-separated row identifiers: not features; batch "
                                                        "transform joins them to the predictions"}),
    ("--processing-instance-type", "prepare", "instance_type", {}),
    ("--strategy", "tuning", "strategy", {"help": "amt (default: SageMaker's tuner, a coordinator job per trial) or "
                                                  "driver (one search process creates every trial's fold jobs); "
                                                  "a search strategy here still means amt with it"}),
    ("--search-strategy", "tuning", "search_strategy", {"help": "Bayesian (default), Random, Hyperband, Grid "
                                                                "(the driver: Bayesian or Random)"}),
    ("--driver-instance-type", "tuning", "driver_instance_type", {"help": "the driver job's instance (pipeline)"}),
    ("--parallel-trials", "tuning", "parallel_trials", {"type": int, "metavar": "M"}),
    ("--rounds", "tuning", "rounds", {"type": int, "metavar": "N", "help": "max_jobs = M x N"}),
    ("--tune", "tuning", "tune", {"metavar": "NAMES", "help": "comma-separated hyperparameters to tune"}),
    ("--tuner-early-stopping", "tuning", "early_stopping", {"choices": ["Off", "Auto"]}),
    ("--seed", "tuning", "seed", {"type": int, "help": "the tuner's random seed"}),
    ("--target-objective", "tuning", "target_objective_value", {"type": float,
                                                                 "help": "stop tuning once a trial reaches it"}),
    ("--max-trials-without-improvement", "tuning", "max_trials_without_improvement", {"type": int}),
    ("--instance-type", "training", "instance_type", {"help": "coordinator, fold jobs and final training"}),
    ("--keep-alive", "training", "keep_alive_seconds", {"type": int, "metavar": "SECONDS",
                                                        "help": "warm-pool keep-alive (0..3600)"}),
    ("--transform-instance-type", "transform", "instance_type", {}),
    ("--name", "pipeline", "name", {"help": "pipeline name"}),
    ("--model-package-group", "pipeline", "model_package_group", {}),
    ("--mlflow-tracking-server-arn", "mlflow", "tracking_server_arn",
     {"help": "the coordinators log their trials to this SageMaker MLflow tracking server"}),
    ("--mlflow-experiment", "mlflow", "experiment", {"help": "MLflow experiment (default: the pipeline name)"}),
)
SDK_MISSING = ('this command needs the SageMaker Python SDK v3, which is not installed here; install the launcher '
               'extra: pip install "warmcv[launcher]"')


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="TOML config file (see examples/pipeline.toml)")
    group = parser.add_argument_group("overrides (win over the config file)")
    for option, _, key, kwargs in _OVERRIDES:
        group.add_argument(option, dest=f"o_{key}_{option}", **kwargs)
    group.add_argument("--range", action="append", metavar="NAME=LOW:HIGH[:log]",
                       help="override a tuning range, e.g. --range num_leaves=16:128:log (repeatable)")
    group.add_argument("--set", action="append", metavar="NAME=VALUE",
                       help="a static hyperparameter for every trial, e.g. --set early_stopping_rounds=50")
    group.add_argument("--early-stopping-rounds", type=int,
                       help="LightGBM early stopping (the final fit then uses the CV's rounds)")
    group.add_argument("--complete-on-convergence", action=argparse.BooleanOptionalAction, default=None)
    group.add_argument("--prune", action=argparse.BooleanOptionalAction, default=None,
                       help="the driver's fold-level pruning ([tuning] prune; rule and threshold in the config)")
    group.add_argument("--release-warm-pools", action=argparse.BooleanOptionalAction, default=None,
                       help="add the last step that releases the run's warm pools (default on)")


def config_from_args(args: argparse.Namespace):
    from warmcv.cli.common import parse_assignments
    from warmcv.launcher.config import load_config, merge, read_config_file

    data: dict[str, Any] = read_config_file(args.config) if args.config else {}
    overrides: dict[str, Any] = {}
    for option, section, key, _ in _OVERRIDES:
        value = getattr(args, f"o_{key}_{option}")
        if value is None:
            continue
        if section is None:
            overrides[key] = value
        else:
            overrides.setdefault(section, {})[key] = value
    if args.range:
        overrides.setdefault("tuning", {})["ranges"] = list(args.range)
    if args.complete_on_convergence is not None:
        overrides.setdefault("tuning", {})["complete_on_convergence"] = args.complete_on_convergence
    if args.prune is not None:
        overrides.setdefault("tuning", {})["prune"] = args.prune
    if args.release_warm_pools is not None:
        overrides.setdefault("pipeline", {})["release_warm_pools"] = args.release_warm_pools
    hyperparameters = parse_assignments(args.set)
    if args.early_stopping_rounds is not None:
        hyperparameters["early_stopping_rounds"] = str(args.early_stopping_rounds)
    if hyperparameters:
        overrides["hyperparameters"] = hyperparameters
    return load_config(merge(data, overrides))


class _SdkModule:
    """A launcher module whose functions need the SageMaker SDK: a missing SDK becomes install advice."""

    def __init__(self, name: str):
        import importlib

        self._module = importlib.import_module(name)

    def __getattr__(self, attr: str):
        function = getattr(self._module, attr)

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return function(*args, **kwargs)
            except ImportError as error:
                if (error.name or "").split(".")[0] == "sagemaker":
                    raise UserInputError(SDK_MISSING) from None
                raise

        return call


def _sdk(module: str) -> Any:
    return _SdkModule(module)


def register(commands: argparse._SubParsersAction) -> None:
    pipeline = commands.add_parser(
        "pipeline", help="the SageMaker Pipeline: definition, upsert, start, deploy-lambdas, iam",
        description="Prepare -> Tune (coordinator trials over K folds, warm pools) -> best hyperparameters "
                    "(Lambda) -> final training -> model + registration with CV mean/std -> batch transform "
                    "-> release warm pools.")
    actions = pipeline.add_subparsers(dest="pipeline_command", metavar="ACTION", required=True)
    definition = actions.add_parser("definition", help="print the pipeline definition JSON (offline, no credentials)")
    _add_config_options(definition)
    definition.add_argument("--out", type=Path, help="write the JSON here instead of stdout")
    definition.set_defaults(handler=_definition)

    upsert = actions.add_parser("upsert", help="create or update the pipeline in SageMaker")
    _add_config_options(upsert)
    upsert.add_argument("--deploy-lambdas", action="store_true", help="also create/update the Lambda functions")
    upsert.set_defaults(handler=_upsert)

    start = actions.add_parser("start", help="upsert the pipeline and start an execution")
    _add_config_options(start)
    start.add_argument("--no-upsert", action="store_true", help="start the pipeline as it is in SageMaker")
    start.set_defaults(handler=_start)

    deploy = actions.add_parser("deploy-lambdas", help="create or update the two Lambda functions the pipeline calls")
    _add_config_options(deploy)
    deploy.set_defaults(handler=_deploy_lambdas)

    policies = actions.add_parser("iam", help="write least-privilege IAM policy documents for the run's roles")
    _add_config_options(policies)
    policies.add_argument("--out", type=Path, default=Path("iam"), help="folder for the JSON documents")
    policies.set_defaults(handler=_iam)

    tune = commands.add_parser(
        "tune", help="start only the tuning job on SageMaker (--sagemaker), on data prepared on S3",
        description="A SageMaker hyperparameter tuning job whose trials are warmcv coordinators, each "
                    "cross-validating its combination over K fold jobs; with --strategy driver, the search runs "
                    "here instead and creates every trial's K fold jobs on SageMaker itself (resumable with the "
                    "same --out). Local tuning: `warmcv run`.")
    tune.add_argument("--sagemaker", action="store_true", required=True, help="tune on SageMaker")
    _add_config_options(tune)
    tune.add_argument("--dry-run", action="store_true",
                      help="print the CreateHyperParameterTuningJob request instead of starting it (offline)")
    tune.add_argument("--job-name", help="tuning job name, up to 32 characters (default: warmcv-<UTC time>); the "
                                         "driver's run name, which its fold jobs are named and tagged after")
    tune.add_argument("--out", type=Path, help="--strategy driver: the run folder (study, result); default "
                                               "runs/<job name>; the same --out resumes")
    tune.set_defaults(handler=_tune)

    release = commands.add_parser(
        "release-warm-pools", help="release the warm pools a run left behind (UpdateTrainingJob KeepAlive 0)",
        description="Finds training jobs whose warm pool is still Available and that belong to the run "
                    "(by warmcv's tags or by name), and sets their keep-alive to 0 so they stop billing.")
    which = release.add_argument_group("which run (at least one)")
    which.add_argument("--execution", help="a pipeline execution ARN: its tuning job's folds and its final training")
    which.add_argument("--tuning-job", action="append", default=[], help="fold jobs of this tuning job")
    which.add_argument("--parent-job", action="append", default=[], help="fold jobs of this coordinator job")
    which.add_argument("--training-job", action="append", default=[], help="this training job itself")
    which.add_argument("--all-warmcv", action="store_true", help="every job warmcv tagged, whatever its run")
    release.add_argument("--region", help="AWS region (default: your AWS configuration)")
    release.add_argument("--since", type=dt.datetime.fromisoformat, help="only jobs created after (ISO 8601)")
    release.add_argument("--dry-run", action="store_true", help="list what would be released, change nothing")
    release.set_defaults(handler=_release)


def _logs_to_stderr() -> None:
    """Keep stdout for the JSON: the SDK logs warnings while it builds the definition."""
    import logging

    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and getattr(handler, "stream", None) is sys.stdout:
            handler.setStream(sys.stderr)


def _definition(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    _logs_to_stderr()
    text = _sdk("warmcv.launcher.pipeline").definition_json(config)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
        print(f"wrote the definition of pipeline {config.pipeline.name} to {args.out}", file=sys.stderr)
    else:
        print(text)
    return 0


def _require_aws_credentials(region: str | None) -> None:
    """Find the credentials before the minute the SDK spends building the pipeline, not after it.

    boto3 looks them up at the first request, which for these commands comes after the SDK has built
    the whole pipeline: without credentials that was a minute, then 50-80 lines ending in
    NoCredentialsError. Looking them up first (the same provider chain) fails at once, and
    warmcv.cli.faults turns botocore's error into what to do. The SDK is checked before: without it
    there is nothing to send, whatever the credentials.
    """
    import importlib

    import boto3
    from botocore.exceptions import NoCredentialsError

    try:
        importlib.import_module("sagemaker.core")
    except ImportError as error:
        if (error.name or "").split(".")[0] == "sagemaker":
            raise UserInputError(SDK_MISSING) from None
        raise
    if boto3.session.Session(region_name=region or None).get_credentials() is None:
        raise NoCredentialsError()


def _upsert(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    _require_aws_credentials(config.aws.region)
    if args.deploy_lambdas:
        _deploy(config)
    result = _sdk("warmcv.launcher.pipeline").publish(config)
    print(f"pipeline {config.pipeline.name} upserted: {result['pipeline_arn']}")
    return 0


def _start(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    _require_aws_credentials(config.aws.region)
    result = _sdk("warmcv.launcher.pipeline").publish(config, upsert=not args.no_upsert, start=True)
    arn = result["execution_arn"]
    print(f"started {arn}\nif it stops early, release its warm pools with: "
          f"warmcv release-warm-pools --execution {arn} --region {config.aws.region}")
    return 0


def _deploy(config) -> None:
    import boto3

    from warmcv.launcher import lambda_deploy
    from warmcv.launcher.config import require

    require(config, "aws.lambda_role_arn")
    client = boto3.client("lambda", region_name=config.aws.region)
    package = lambda_deploy.build_zip()
    for function in lambda_deploy.functions(config.pipeline.best_hyperparameters_lambda,
                                            config.pipeline.release_warm_pools_lambda):
        arn = lambda_deploy.deploy(client, function, config.aws.lambda_role_arn, package)
        print(f"Lambda {function.name} ({function.handler_path}): {arn}")


def _deploy_lambdas(args: argparse.Namespace) -> int:
    _deploy(config_from_args(args))
    return 0


def _iam(args: argparse.Namespace) -> int:
    from warmcv.launcher.iam import write_policies

    for path in write_policies(config_from_args(args), args.out):
        print(path)
    return 0


def _tune(args: argparse.Namespace) -> int:
    from warmcv.launcher.config import check_tuning_job_name

    if args.job_name is not None:
        check_tuning_job_name(args.job_name)
    config = config_from_args(args)
    if config.tuning.strategy == "driver":
        return _tune_with_driver(args, config)
    module = _sdk("warmcv.launcher.tuner")
    if args.dry_run:
        _logs_to_stderr()
        print(json.dumps(module.tuning_request(config), indent=2, sort_keys=True, default=str))
        return 0
    _require_aws_credentials(config.aws.region)
    name = module.start_tuning(config, job_name=args.job_name)
    print(f"started tuning job {name}\nrelease its warm pools when it is done: "
          f"warmcv release-warm-pools --tuning-job {name} --region {config.aws.region}")
    return 0


def _tune_with_driver(args: argparse.Namespace, config: Any) -> int:
    """The driver's search from this machine (no SageMaker SDK needed: boto3 only)."""
    import time

    from warmcv.launcher import local_driver

    name = args.job_name or f"warmcv-{time.strftime('%y%m%d-%H%M%S', time.gmtime())}"
    if args.dry_run:
        print(json.dumps(local_driver.plan_request(config, name), indent=2, sort_keys=True))
        return 0
    from warmcv.tuning.search import stop_flag_on_signals

    out = args.out or Path("runs") / name
    if args.out is not None and (args.out / local_driver.RUN_FILE).is_file():
        name = None  # resuming: the run folder names the run
    with stop_flag_on_signals() as stop:
        result = local_driver.run_here(config, out, job_name=args.job_name or name, stop=stop)
    print(f"best trial #{result['best_trial']}: CV {result['metric']} {result['cv_mean']:.6f} +/- "
          f"{result['cv_std']:.6f}; result in {out}\nrelease its warm pools when you are done: "
          f"warmcv release-warm-pools --tuning-job {result['run']} --region {config.aws.region}")
    return 0


def _release(args: argparse.Namespace) -> int:
    from warmcv.launcher.executions import execution_selector
    from warmcv.launcher.warm_pools import RunSelector, names, release_warm_pools, sagemaker_client

    client = sagemaker_client(args.region)
    since = args.since
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=dt.UTC)
    if not args.execution:
        try:
            selector = RunSelector(tuning_jobs=names(args.tuning_job), parent_jobs=names(args.parent_job),
                                   training_jobs=names(args.training_job), any_warmcv_job=args.all_warmcv)
        except ValueError as error:
            raise UserInputError(
                f"{error}: use --execution, --tuning-job, --parent-job, --training-job or --all-warmcv") from None
    else:
        try:
            found, started = execution_selector(client, args.execution)
        except ValueError as error:
            raise UserInputError(str(error)) from None
        selector = RunSelector(tuning_jobs=found.tuning_jobs | names(args.tuning_job),
                               parent_jobs=names(args.parent_job),
                               training_jobs=found.training_jobs | names(args.training_job),
                               any_warmcv_job=args.all_warmcv)
        since = since or started
    report = release_warm_pools(client, selector, created_after=since, dry_run=args.dry_run)
    verb = "would release" if args.dry_run else "released"
    print(f"{verb} {len(report.released)} warm pool(s){': ' + ', '.join(report.released) if report.released else ''}")
    if report.already_gone:
        print(f"{len(report.already_gone)} pool(s) were already reused or gone: {', '.join(report.already_gone)}")
    print(f"{report.examined} available pool(s) examined; requests: "
          + ", ".join(f"{k} {v}" for k, v in sorted(report.requests.items())))
    return 0
