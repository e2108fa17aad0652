"""API calls per trial and end-of-trial latency of the SageMaker fold runner, at production timing.

Drives the real `SageMakerFoldRunner` (default `Timing`) against the boto3-shaped simulated SageMaker of
tests/fakes/simulated.py on a ManualClock, so hours of fold jobs play in a second. Prints, per scenario,
the calls one coordinator makes for one trial and how long after its last fold ended the trial ended
(the overhead that polling adds), averaged over seeds.

    python bench/sagemaker_api_calls.py
"""

from __future__ import annotations

import logging
import random
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "container_src"), str(ROOT)]

from tests.fakes.simulated import SimulatedS3, SimulatedSageMaker  # noqa: E402
from warmcv.aws.fold_jobs import FoldJobTemplate  # noqa: E402
from warmcv.aws.training_jobs import TrainingJobsApi  # noqa: E402
from warmcv.clock import ManualClock  # noqa: E402
from warmcv.cv import FoldTask  # noqa: E402
from warmcv.errors import FoldFailed  # noqa: E402
from warmcv.runners.sagemaker import SageMakerFoldRunner, Timing  # noqa: E402

PARENT = {
    "TrainingJobName": "trial-001", "TrainingJobArn": "arn:aws:sagemaker:us-east-1:123456789012:training-job/trial-001",
    "AlgorithmSpecification": {"TrainingImage": "img", "TrainingInputMode": "File"},
    "RoleArn": "arn:aws:iam::123456789012:role/coordinator",
    "InputDataConfig": [{"ChannelName": "train", "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix",
                                                                                  "S3Uri": "s3://b/p"}}}],
    "OutputDataConfig": {"S3OutputPath": "s3://b/out"},
    "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
    "StoppingCondition": {"MaxRuntimeInSeconds": 86400},
}
SCENARIOS = [  # name, folds, start seconds, training seconds, +/- share of random spread in both
    ("cold start, 2-min folds", 5, 180, 120, 0.1),
    ("warm pool, 2-min folds", 5, 20, 120, 0.1),
    ("warm pool, 2-min folds, no spread", 5, 20, 120, 0.0),
    ("warm pool, 10-min folds", 5, 20, 600, 0.1),
    ("warm pool, 2-min folds, K=10", 10, 20, 120, 0.1),
]
SEEDS = range(100)  # 20 left the mean latency at the mercy of a few ~30-s outliers on 10-min folds


def one_trial(k: int, start: float, train: float, seed: int, noise: float = 0.1, fail: bool = False) -> dict:
    clock = ManualClock()
    rng = random.Random(seed)
    durations = {}

    def duration(request: dict) -> tuple[float, float]:
        name = request["TrainingJobName"]
        spread = (1 - noise, 1 + noise)
        durations.setdefault(name, (start * rng.uniform(*spread), train * rng.uniform(*spread)))
        return durations[name]

    sim = SimulatedSageMaker(clock, durations=duration, creates_per_second=1.0,
                             failures={"trial-001-f1": "AlgorithmError: injected"} if fail else {})
    runner = SageMakerFoldRunner(TrainingJobsApi(sim, s3=SimulatedS3(sim)), FoldJobTemplate.from_parent(PARENT, 600),
                                 clock=clock, rng=random.Random(seed), timing=Timing())
    try:
        runner.run([FoldTask(f, {"num_boost_round": "100"}) for f in range(k)])
    except FoldFailed:
        pass
    ended = sim.end_time("trial-001-f1") if fail else max(sim.end_time(n) for n in sim.jobs)
    calls = runner.api.calls
    return {"creates": calls.creates, "describes": calls.describes, "stops": calls.stops, "s3": calls.s3_reads,
            "throttled": sim.count("CreateTrainingJob", "ThrottlingException"),
            "latency": clock.monotonic() - ended, "trial": clock.monotonic()}


def main() -> None:
    logging.disable(logging.CRITICAL)  # the failure scenario logs its (expected) failure
    print(f"{'scenario':36} {'K':>3} {'creates':>8} {'describes':>10} {'/fold':>6} {'stops':>6} {'S3':>4} "
          f"{'latency s':>10} {'overhead':>9}")
    for name, k, start, train, noise in SCENARIOS:
        runs = [one_trial(k, start, train, seed, noise) for seed in SEEDS]
        mean = {key: statistics.fmean(r[key] for r in runs) for key in runs[0]}
        print(f"{name:36} {k:>3} {mean['creates']:>8.1f} {mean['describes']:>10.1f} {mean['describes'] / k:>6.1f} "
              f"{mean['stops']:>6.1f} {mean['s3']:>4.1f} {mean['latency']:>10.2f} "
              f"{100 * mean['latency'] / (mean['trial'] - mean['latency']):>8.2f}%")
    runs = [one_trial(5, 20, 120, seed, fail=True) for seed in SEEDS]
    mean = {key: statistics.fmean(r[key] for r in runs) for key in runs[0]}
    print(f"{'one fold fails (siblings stopped)':36} {5:>3} {mean['creates']:>8.1f} {mean['describes']:>10.1f} "
          f"{'':>6} {mean['stops']:>6.1f} {'':>4} {mean['latency']:>10.2f}   (from the failure to the end)")
    print("\ncreates: CreateTrainingJob calls, including those throttled at the account's 1/s (retried with jitter);"
          "\nlatency: seconds from the last fold job's end to the trial's end; overhead: latency / fold time.")


if __name__ == "__main__":
    main()
