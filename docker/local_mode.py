"""Train the bundled example against the warmcv image with SageMaker SDK v3 local mode (no AWS account).

    python docker/local_mode.py --image warmcv:latest [--out runs/local-mode] [--folds 3] [--rounds 100]
                                [--set NAME=VALUE ...]

What it does, as the SageMaker Pipeline would on AWS:
1. "Processing": prepares the folds with the image's `prepare` command (`docker run`, the same
   arguments a Processing job passes), from the example CSV the image ships.
2. "Tuning trial": one coordinator training job (`ModelTrainer`, `Mode.LOCAL_CONTAINER`, docker-compose)
   cross-validates one hyperparameter combination; its log carries the line the tuner's metric regex
   reads, and its output holds cv_summary.json.
3. "Final training": one worker job trains on all rows; its model.tar.gz is what batch transform serves.

Needs Docker, docker compose (v2 plugin or docker-compose v1), and `pip install sagemaker==3.27.0`
(or warmcv's `launcher` extra). The image must already be local (`docker build -t warmcv .`): local
mode only pulls images from ECR, with AWS credentials. Local mode asks for credentials and a region
even when nothing leaves the machine, so dummy ones are set when none are configured. Inputs and
outputs stay on disk: v3 takes a local folder path as a channel's data source (it mounts it; a
file:// URI is not accepted) and writes model.tar.gz/output.tar.gz under `local_container_root`.
Prints a JSON summary on the last line and exits non-zero, with the job's failure reason, if a job fails.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path


def local_aws_environment() -> None:
    """Local mode builds a boto session (and writes its credentials into docker-compose.yaml): keep them fake."""
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ.setdefault("AWS_REGION", os.environ["AWS_DEFAULT_REGION"])
    if not (os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE")):
        os.environ["AWS_ACCESS_KEY_ID"] = "local-mode-dummy"
        os.environ["AWS_SECRET_ACCESS_KEY"] = "local-mode-dummy"
    os.environ.setdefault("SAGEMAKER_VALIDATE_ROLE", "false")


def prepare_folds(image: str, out: Path, folds: int) -> Path:
    """The Processing step: the image's `prepare`, reading the example the image ships."""
    prepared = out / "prepared"
    command = ["docker", "run", "--rm", "--network", "none", "-v", f"{out.resolve()}:/opt/ml/processing",
               "--entrypoint", "sh", image, "-c",
               "warmcv example --out /tmp/census.csv.gz >/dev/null && "
               "exec warmcv --failure-file /opt/ml/processing/message prepare --data /tmp/census.csv.gz "
               f"--target income --folds {folds} --out /opt/ml/processing/prepared"]
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True)
    return prepared


def train(image: str, name: str, hyperparameters: dict[str, str], prepared: Path, root: Path) -> Path:
    """One local training job; returns the folder holding model.tar.gz and output.tar.gz."""
    from sagemaker.train import ModelTrainer
    from sagemaker.train.configs import Compute, InputData
    from sagemaker.train.model_trainer import Mode

    root.mkdir(parents=True, exist_ok=True)
    trainer = ModelTrainer(
        training_image=image,
        training_mode=Mode.LOCAL_CONTAINER,
        base_job_name=name,
        role="arn:aws:iam::111122223333:role/local-mode-unused",
        compute=Compute(instance_type="local", instance_count=1),
        # v3 passes hyperparameters as given; SageMaker's contract is strings, so give strings.
        hyperparameters={key: str(value) for key, value in hyperparameters.items()},
        input_data_config=[InputData(channel_name="train", data_source=str(prepared.resolve()))],
        local_container_root=str(root.resolve()),
    )
    try:
        trainer.train(wait=True, logs=True)
    finally:
        remove_stopped_containers(root)
    return root / "compressed_artifacts"


def remove_stopped_containers(root: Path) -> None:
    """Local mode leaves its stopped compose container behind; remove it (found by its compose folder)."""
    found = subprocess.run(["docker", "ps", "-aq", "--filter",
                            f"label=com.docker.compose.project.working_dir={root.resolve()}"],
                           capture_output=True, text=True, check=False).stdout.split()
    if found:
        subprocess.run(["docker", "rm", "-f", *found], capture_output=True, check=False)


def members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        return {m.name.lstrip("./"): tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def run_job(image: str, name: str, hyperparameters: dict[str, str], prepared: Path,
            root: Path) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """Train, then return model.tar.gz and output.tar.gz contents; a failed job exits with its failure file."""
    try:
        artifacts = train(image, name, hyperparameters, prepared, root)
        error = None
    except RuntimeError as raised:  # the SDK's "Failed to run docker-compose ... exited with code 1"
        artifacts, error = root / "compressed_artifacts", raised
    if not (artifacts / "output.tar.gz").exists():
        raise SystemExit(f"{name}: no output from the job ({error or 'nothing written'})")
    return job_result(artifacts, name)


def job_result(artifacts: Path, what: str) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """model.tar.gz and output.tar.gz contents; a failure file means the job failed, whatever compose said."""
    model, output = members(artifacts / "model.tar.gz"), members(artifacts / "output.tar.gz")
    if "failure" in output:
        raise SystemExit(f"{what} failed: {output['failure'].decode()}")
    if "success" not in output:
        raise SystemExit(f"{what} left neither success nor failure in its output: {sorted(output)}")
    return model, output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", required=True, help="a local image tag, e.g. warmcv:latest")
    parser.add_argument("--out", type=Path, default=Path("runs/local-mode"), help="working folder")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=100, help="num_boost_round for both jobs")
    parser.add_argument("--set", action="append", metavar="NAME=VALUE",
                        help="another hyperparameter for both jobs, e.g. --set num_leaves=63")
    args = parser.parse_args(argv)
    local_aws_environment()
    args.out.mkdir(parents=True, exist_ok=True)

    prepared = prepare_folds(args.image, args.out, args.folds)

    hyperparameters = {"num_boost_round": str(args.rounds), **dict(item.split("=", 1) for item in args.set or [])}
    _, trial_output = run_job(args.image, "warmcv-trial", {**hyperparameters, "mode": "coordinator"}, prepared,
                              args.out / "warmcv-trial")
    summary = json.loads(trial_output["data/cv_summary.json"])

    final = args.out / "warmcv-final"
    final_model, _ = run_job(args.image, "warmcv-final", {**hyperparameters, "mode": "worker", "fold": "all"},
                             prepared, final)
    metadata = json.loads(final_model["model.json"])

    result = {
        "cv_metric": summary["metric"], "cv_mean": summary["validation_mean"], "cv_std": summary["validation_std"],
        "folds": summary["n_folds"], "final_model": str((final / "compressed_artifacts/model.tar.gz").resolve()),
        "final_model_files": sorted(final_model), "classes": metadata["classes"],
    }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
