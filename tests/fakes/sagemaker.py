"""A small SageMaker training-job service for tests, reached by real boto3 clients over HTTP.

moto's SageMaker completes every job at once, silently overwrites duplicate names, has no
StopTrainingJob, no warm pools and no throttling, so it cannot test a coordinator. This fake speaks the
same wire protocol as SageMaker (AWS JSON 1.1 on POST /, `X-Amz-Target: SageMaker.<Operation>`), so the
code under test uses an ordinary boto3 client pointed at it (endpoint_url, or AWS_ENDPOINT_URL_SAGEMAKER
in a child process). Each job RUNS THE REAL CONTAINER CODE on the container contract in a temp dir:

    Starting (cold start, or a short warm start when a matching warm pool is free)
    -> Downloading (channels copied from S3, here moto's S3 server)
    -> Training (`python -m warmcv train --base-dir ...` or the toolkit's `train`, as a child process)
    -> Uploading (model/ -> model.tar.gz, output/data/ -> output.tar.gz)
    -> Completed | Failed (FailureReason = the failure file) | Stopped (SIGTERM, SIGKILL after a grace)

It also keeps warm pools (matching on the fields SageMaker matches, one job per pool, expiry after
KeepAlive scaled to test time), scrapes FinalMetricDataList from the job's log with its MetricDefinitions,
enforces the request limits botocore does not (name pattern and length, KeepAlive <= 3600, hyperparameter
and tag limits, reserved tag keys), an instance quota (ResourceLimitExceeded), per-operation rate limits
and injected ThrottlingException storms, and records every call.
"""

from __future__ import annotations

import copy
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3

from tests.fakes.s3 import CREDENTIALS, REGION
from warmcv.simulation.sagemaker import POOL_KEY_FIELDS  # fields SageMaker compares before reusing a pool

ACCOUNT = "123456789012"
NAME_PATTERN = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
TERMINAL = ("Completed", "Failed", "Stopped")
REPO = Path(__file__).resolve().parents[2]


class FakeError(Exception):
    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


@dataclass
class FakeTiming:
    cold_start: float = 0.8  # Starting without a warm pool
    warm_start: float = 0.05  # Starting on a reused warm pool
    stop_grace: float = 20.0  # SIGKILL this long after SIGTERM (SageMaker: 120 s)
    keep_alive_scale: float = 0.01  # one KeepAlive second lasts this many real seconds


@dataclass
class Fault:
    """Something to do to the jobs whose CreateTrainingJob request `match`es (at most `times` jobs)."""

    match: Callable[[dict], bool]
    start_delay: float = 0.0  # extra seconds in Starting
    corrupt_data: bool = False  # garble the downloaded data: the real worker fails on it
    skip_output_archive: bool = False  # upload no output.tar.gz (the coordinator must fall back)
    times: int | None = None


@dataclass
class Call:
    at: float
    operation: str
    name: str
    outcome: str  # "OK" or the error code


@dataclass
class Pool:
    key: str
    holder: str
    instance_type: str
    count: int
    cache_dir: Path
    state: str = "InUse"
    expires_at: float = 0.0


class _RateLimit:
    """Token bucket: `rate` requests per second, `burst` at once."""

    def __init__(self, rate: float, burst: int = 1):
        self.rate, self.burst = rate, burst
        self.tokens, self.updated = float(burst), time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


def _get(document: dict, dotted: str) -> Any:
    value: Any = document
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


@dataclass
class FakeJob:
    request: dict
    arn: str
    created: float
    status: str = "InProgress"
    secondary: str = "Starting"
    failure_reason: str | None = None
    transitions: list = field(default_factory=list)
    start_time: float | None = None
    end_time: float | None = None
    modified: float = 0.0
    final_metrics: list = field(default_factory=list)
    warm_pool: dict | None = None
    pool: Pool | None = None
    process: subprocess.Popen | None = None
    stop_event: threading.Event = field(default_factory=threading.Event)
    restart_event: threading.Event = field(default_factory=threading.Event)
    faults: list = field(default_factory=list)
    tuning_job_arn: str | None = None
    attempts: int = 0
    logs: list = field(default_factory=list)  # one text per attempt
    exit_codes: list = field(default_factory=list)  # the container's exit code, per attempt
    bases: list = field(default_factory=list)  # the contract's base dir, per attempt
    thread: threading.Thread | None = None

    @property
    def name(self) -> str:
        return self.request["TrainingJobName"]


class FakeSageMaker:
    def __init__(self, s3_url: str, workdir: Path, timing: FakeTiming | None = None,
                 command: str = "cli", child_env: dict[str, str] | None = None):
        self.s3_url = s3_url
        self.workdir = Path(workdir)
        self.timing = timing or FakeTiming()
        self.command = command  # "cli": python -m warmcv train; "toolkit": sagemaker-training's `train`
        self.child_env = dict(child_env or {})
        self.lock = threading.RLock()
        self.jobs: dict[str, FakeJob] = {}
        self.pools: list[Pool] = []
        self.calls: list[Call] = []
        self.faults: list[Fault] = []
        self.rate_limits: dict[str, _RateLimit] = {}
        self.throttle_next: Counter = Counter()
        self.instance_quota: dict[str, int] = {}
        self.warm_pool_quota: int = 100
        self.tuning_job_arns: dict[str, str] = {}
        self.s3 = boto3.client("s3", endpoint_url=s3_url, region_name=REGION,
                               aws_access_key_id="testing", aws_secret_access_key="testing")
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                operation = self.headers.get("X-Amz-Target", "").split(".", 1)[-1]
                status, payload = fake.handle(operation, json.loads(body or b"{}"))
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
                    super().handle_error(request, client_address)  # a killed client is expected, a bug is not

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    # -- control ---------------------------------------------------------------------------------------
    def client(self, **config: Any):
        from botocore.config import Config

        return boto3.client("sagemaker", endpoint_url=self.url, region_name=REGION, aws_access_key_id="testing",
                            aws_secret_access_key="testing",
                            config=Config(retries={"mode": "adaptive", "total_max_attempts": 10}, **config))

    def limit_rate(self, operation: str, per_second: float, burst: int = 1) -> None:
        self.rate_limits[operation] = _RateLimit(per_second, burst)

    def restart(self, name: str) -> None:
        """Kill the job's process with SIGKILL and run it again (SageMaker's RetryStrategy after a crash)."""
        self.jobs[name].restart_event.set()

    def wait(self, name: str, timeout: float = 120.0, statuses: tuple[str, ...] = TERMINAL) -> FakeJob:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.jobs.get(name)
            if job is not None and job.status in statuses:
                return job
            time.sleep(0.05)
        job = self.jobs.get(name)
        raise TimeoutError(f"{name} is {job.status if job else 'missing'}/{job.secondary if job else ''} after "
                           f"{timeout} s; log:\n{self.log(name)}")

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        raise TimeoutError("condition not reached")

    def log(self, name: str) -> str:
        job = self.jobs.get(name)
        return "\n".join(job.logs) if job else ""

    def count(self, operation: str, outcome: str | None = None, prefix: str = "") -> int:
        with self.lock:
            return sum(1 for c in self.calls if c.operation == operation and c.name.startswith(prefix)
                       and (outcome is None or c.outcome == outcome))

    def fold_jobs(self, parent: str) -> list[FakeJob]:
        return [j for n, j in sorted(self.jobs.items()) if n.startswith(parent + "-")]

    def close(self) -> None:
        for job in list(self.jobs.values()):
            job.stop_event.set()
            if job.process and job.process.poll() is None:
                job.process.kill()
        for job in list(self.jobs.values()):
            if job.thread:
                job.thread.join(timeout=10)
        self.server.shutdown()
        self.server.server_close()

    # -- the wire --------------------------------------------------------------------------------------
    def handle(self, operation: str, params: dict) -> tuple[int, dict]:
        name = params.get("TrainingJobName") or params.get("ResourceArn", "").rsplit("/", 1)[-1]
        with self.lock:
            try:
                if self.throttle_next[operation] > 0:
                    self.throttle_next[operation] -= 1
                    raise FakeError("ThrottlingException", "Rate exceeded")
                limit = self.rate_limits.get(operation)
                if limit is not None and not limit.take():
                    raise FakeError("ThrottlingException", "Rate exceeded")
                method = getattr(self, f"_op_{operation}", None)
                if method is None:
                    raise FakeError("UnknownOperationException", f"{operation} is not implemented by the fake")
                payload = method(params)
                self.calls.append(Call(time.monotonic(), operation, name, "OK"))
                return 200, payload
            except FakeError as error:
                self.calls.append(Call(time.monotonic(), operation, name, error.code))
                return error.status, {"__type": error.code, "message": error.message}

    # -- operations ------------------------------------------------------------------------------------
    def _op_CreateTrainingJob(self, p: dict) -> dict:
        name = p["TrainingJobName"]
        self._validate(p)
        if name in self.jobs:
            raise FakeError("ResourceInUse", "Training job names must be unique within an AWS account and region, "
                                             f"and a training job with this name already exists ({self._arn(name)})")
        self._check_quota(p)
        now = time.time()
        job = FakeJob(request=copy.deepcopy(p), arn=self._arn(name), created=now, modified=now,
                      tuning_job_arn=self.tuning_job_arns.get(name))
        for fault in self.faults:
            if fault.match(p) and (fault.times is None or fault.times > 0):
                job.faults.append(fault)
                if fault.times is not None:
                    fault.times -= 1
        self._transition(job, "Starting", "Preparing the instances for training")
        self.jobs[name] = job
        job.thread = threading.Thread(target=self._lifecycle, args=(job,), daemon=True, name=f"fake-{name}")
        job.thread.start()
        return {"TrainingJobArn": job.arn}

    def _op_DescribeTrainingJob(self, p: dict) -> dict:
        return self._describe(self._job(p["TrainingJobName"]))

    def _op_StopTrainingJob(self, p: dict) -> dict:
        job = self._job(p["TrainingJobName"])
        if job.status != "InProgress":
            raise FakeError("ValidationException",
                            f"The request was rejected because the training job is in status {job.status}.")
        job.status = "Stopping"
        self._transition(job, "Stopping", "Stopping the training job")
        job.stop_event.set()
        return {}

    def _op_ListTags(self, p: dict) -> dict:
        for job in self.jobs.values():
            if job.arn == p["ResourceArn"]:
                return {"Tags": copy.deepcopy(job.request.get("Tags", []))}
        raise FakeError("ValidationException", "Requested resource not found.")

    def _job(self, name: str) -> FakeJob:
        job = self.jobs.get(name)
        if job is None:
            raise FakeError("ValidationException", "Requested resource not found.")
        return job

    def _arn(self, name: str) -> str:
        return f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/{name.lower()}"

    def _validate(self, p: dict) -> None:
        problems = []
        name = p["TrainingJobName"]
        if len(name) > 63 or not NAME_PATTERN.fullmatch(name):
            problems.append(f"Value '{name}' at 'trainingJobName' failed to satisfy constraint")
        keep_alive = p.get("ResourceConfig", {}).get("KeepAlivePeriodInSeconds")
        if keep_alive is not None and not 0 <= keep_alive <= 3600:
            problems.append("KeepAlivePeriodInSeconds must be between 0 and 3600")
        hps = p.get("HyperParameters", {})
        if len(hps) > 100 or any(len(v) > 2500 or len(k) > 256 for k, v in hps.items()):
            problems.append("HyperParameters exceed the limits")
        tags = p.get("Tags", [])
        if len(tags) > 50:
            problems.append("Tags: at most 50")
        if any(t["Key"].lower().startswith("aws:") for t in tags):
            problems.append("Tag keys may not start with aws:")
        if len(p.get("AlgorithmSpecification", {}).get("MetricDefinitions", [])) > 40:
            problems.append("MetricDefinitions: at most 40")
        if p.get("EnableManagedSpotTraining") and keep_alive:
            problems.append("warm pools are not supported with managed spot training")
        if problems:
            raise FakeError("ValidationException", "; ".join(problems))

    def _check_quota(self, p: dict) -> None:
        resources = p.get("ResourceConfig", {})
        instance_type = resources.get("InstanceType", "")
        limit = self.instance_quota.get(instance_type)
        if limit is None:
            return
        used = sum(j.request["ResourceConfig"].get("InstanceCount", 1) for j in self.jobs.values()
                   if j.status in ("InProgress", "Stopping") and j.pool is None
                   and j.request["ResourceConfig"]["InstanceType"] == instance_type)
        used += sum(pool.count for pool in self._live_pools() if pool.instance_type == instance_type)
        delta = resources.get("InstanceCount", 1)
        if used + delta > limit:
            raise FakeError("ResourceLimitExceeded",
                            f"The account-level service limit '{instance_type} for training job usage' is {limit} "
                            f"Instances, with current utilization of {used} Instances and a request delta of {delta} "
                            "Instances. Please use AWS Service Quotas to request an increase for this quota. If AWS "
                            "Service Quotas is not available, contact AWS support to request an increase for this "
                            "quota.")

    def _describe(self, job: FakeJob) -> dict:
        r = job.request
        out = {k: copy.deepcopy(r[k]) for k in (
            "HyperParameters", "AlgorithmSpecification", "RoleArn", "InputDataConfig", "OutputDataConfig",
            "ResourceConfig", "VpcConfig", "StoppingCondition", "EnableManagedSpotTraining", "CheckpointConfig",
            "Environment", "RetryStrategy") if k in r}
        out.update({
            "TrainingJobName": job.name, "TrainingJobArn": job.arn, "TrainingJobStatus": job.status,
            "SecondaryStatus": job.secondary, "CreationTime": job.created, "LastModifiedTime": job.modified,
            "SecondaryStatusTransitions": copy.deepcopy(job.transitions),
            "EnableNetworkIsolation": bool(r.get("EnableNetworkIsolation", False)),
            "EnableInterContainerTrafficEncryption": bool(r.get("EnableInterContainerTrafficEncryption", False)),
            "ModelArtifacts": {"S3ModelArtifacts": self._output_uri(job, "model.tar.gz")},
        })
        out.setdefault("StoppingCondition", {"MaxRuntimeInSeconds": 86400})
        if job.tuning_job_arn:
            out["TuningJobArn"] = job.tuning_job_arn
        if job.failure_reason:
            out["FailureReason"] = job.failure_reason
        if job.start_time:
            out["TrainingStartTime"] = job.start_time
        if job.end_time:
            out["TrainingEndTime"] = job.end_time
            seconds = round(job.end_time - (job.start_time or job.created))
            out["TrainingTimeInSeconds"] = seconds
            out["BillableTimeInSeconds"] = seconds
        if job.final_metrics:
            out["FinalMetricDataList"] = copy.deepcopy(job.final_metrics)
        self._expire_pools()
        if job.warm_pool:
            out["WarmPoolStatus"] = copy.deepcopy(job.warm_pool)
        return out

    def _output_uri(self, job: FakeJob, file: str) -> str:
        return f"{job.request['OutputDataConfig']['S3OutputPath'].rstrip('/')}/{job.name}/output/{file}"

    def _transition(self, job: FakeJob, secondary: str, message: str) -> None:
        now = time.time()
        if job.transitions and "EndTime" not in job.transitions[-1]:
            job.transitions[-1]["EndTime"] = now
        job.transitions.append({"Status": secondary, "StartTime": now, "StatusMessage": message})
        job.secondary, job.modified = secondary, now

    # -- warm pools ------------------------------------------------------------------------------------
    def _pool_key(self, request: dict) -> str:
        return json.dumps([_get(request, f) for f in POOL_KEY_FIELDS], sort_keys=True)

    def _expire_pools(self) -> None:
        now = time.monotonic()
        for pool in list(self.pools):
            if pool.state == "Available" and pool.expires_at <= now:
                self.pools.remove(pool)
                holder = self.jobs.get(pool.holder)
                if holder is not None:
                    holder.warm_pool = {"Status": "Terminated", "ResourceRetainedBillableTimeInSeconds": 0}

    def _live_pools(self) -> list[Pool]:
        self._expire_pools()
        return self.pools

    def _take_pool(self, job: FakeJob) -> Pool | None:
        keep_alive = job.request["ResourceConfig"].get("KeepAlivePeriodInSeconds", 0)
        key = self._pool_key(job.request)
        for pool in self._live_pools():
            if pool.state == "Available" and pool.key == key:
                previous = self.jobs[pool.holder]
                previous.warm_pool = {"Status": "Reused", "ReusedByJob": job.name,
                                      "ResourceRetainedBillableTimeInSeconds": 0}
                pool.state, pool.holder = "InUse", job.name
                job.pool = pool
                job.warm_pool = {"Status": "InUse"}
                return pool
        if keep_alive:
            job.warm_pool = None
        return None

    def _release(self, job: FakeJob) -> None:
        keep_alive = job.request["ResourceConfig"].get("KeepAlivePeriodInSeconds", 0)
        resources = job.request["ResourceConfig"]
        launched = job.start_time is not None  # no pool for a job stopped before its instances started
        if keep_alive and (job.pool is not None or (launched and len(self._live_pools()) < self.warm_pool_quota)):
            pool = job.pool or Pool(self._pool_key(job.request), job.name, resources["InstanceType"],
                                    resources.get("InstanceCount", 1), self.workdir / "pools" / uuid.uuid4().hex)
            pool.state, pool.holder = "Available", job.name
            pool.expires_at = time.monotonic() + keep_alive * self.timing.keep_alive_scale
            if pool not in self.pools:
                self.pools.append(pool)
            job.warm_pool = {"Status": "Available", "ResourceRetainedBillableTimeInSeconds": 0}
        elif job.pool is not None:
            self.pools.remove(job.pool)
            job.warm_pool = {"Status": "Terminated"}
        job.pool = None

    # -- running a job ---------------------------------------------------------------------------------
    def _lifecycle(self, job: FakeJob) -> None:
        try:
            while True:
                outcome = self._attempt(job)
                if outcome != "restart":
                    break
        except Exception as error:  # noqa: BLE001 - a bug in the fake must show as a failed job, not a hang
            with self.lock:
                job.status, job.failure_reason = "Failed", f"InternalServerError: fake: {error!r}"
                job.end_time = time.time()
                self._transition(job, "Failed", str(error))

    def _wait(self, job: FakeJob, seconds: float) -> bool:
        """Sleep unless stopped; True if a stop (or restart) came."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if job.stop_event.is_set() or job.restart_event.is_set():
                return True
            time.sleep(0.02)
        return job.stop_event.is_set() or job.restart_event.is_set()

    def _finish(self, job: FakeJob, status: str, reason: str | None = None) -> str:
        with self.lock:
            job.status = status
            job.failure_reason = reason
            job.end_time = time.time()
            self._transition(job, status, reason or status)
            self._release(job)
        return status

    def _attempt(self, job: FakeJob) -> str:
        job.attempts += 1
        with self.lock:
            if job.attempts > 1:
                job.restart_event.clear()
                self._transition(job, "Restarting", "Restarting the training job")
            pool = self._take_pool(job)
        delay = (self.timing.warm_start if pool else self.timing.cold_start) + sum(f.start_delay for f in job.faults)
        if self._wait(job, delay):
            if job.restart_event.is_set():
                return "restart"
            return self._finish(job, "Stopped")
        base = self.workdir / job.name / f"attempt-{job.attempts}" / "ml"
        job.bases.append(base)
        with self.lock:
            self._transition(job, "Downloading", "Downloading input data")
            job.start_time = job.start_time or time.time()
        self._download(job, base)
        with self.lock:
            self._transition(job, "Training", "Training image download completed. Training in progress.")
        code, stopped, restart = self._run_container(job, base, pool)
        if restart:
            return "restart"
        if stopped:
            return self._finish(job, "Stopped")
        if code != 0:
            failure = base / "output" / "failure"
            reason = failure.read_text() if failure.exists() else f"AlgorithmError: exit code {code}"
            return self._finish(job, "Failed", reason)
        with self.lock:
            self._transition(job, "Uploading", "Uploading generated training model")
        self._upload(job, base)
        return self._finish(job, "Completed")

    def _download(self, job: FakeJob, base: Path) -> None:
        for sub in ("input/config", "model", "output/data", "code"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        r = job.request
        (base / "input/config/hyperparameters.json").write_text(json.dumps(r.get("HyperParameters", {})))
        channels = {}
        for channel in r.get("InputDataConfig", []):
            name = channel["ChannelName"]
            uri = channel["DataSource"]["S3DataSource"]["S3Uri"]
            bucket, _, prefix = uri[len("s3://"):].partition("/")
            target = base / "input" / "data" / name
            target.mkdir(parents=True, exist_ok=True)
            for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    relative = item["Key"][len(prefix):].lstrip("/") or Path(item["Key"]).name
                    path = target / relative
                    path.parent.mkdir(parents=True, exist_ok=True)
                    self.s3.download_file(bucket, item["Key"], str(path))
            channels[name] = {"TrainingInputMode": channel.get("InputMode", "File"),
                              "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"}
            if any(f.corrupt_data for f in job.faults):
                for parquet in target.rglob("*.parquet"):
                    parquet.write_bytes(b"this is not a parquet file")
        (base / "input/config/inputdataconfig.json").write_text(json.dumps(channels))
        (base / "input/config/resourceconfig.json").write_text(json.dumps(
            {"current_host": "algo-1", "hosts": ["algo-1"], "current_group_name": "homogeneousCluster",
             "current_instance_type": r["ResourceConfig"]["InstanceType"], "network_interface_name": "eth0"}))

    def _run_container(self, job: FakeJob, base: Path, pool: Pool | None) -> tuple[int, bool, bool]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SM_", "SAGEMAKER_", "TRAINING_JOB"))}
        env.update(CREDENTIALS)
        env.update({
            "PYTHONPATH": os.pathsep.join([str(REPO / "container_src"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
            "PYTHONUNBUFFERED": "1", "SAGEMAKER_BASE_DIR": str(base), "SM_STUDIO_LOCAL_MODE": "true",
            "TRAINING_JOB_NAME": job.name, "TRAINING_JOB_ARN": job.arn,
            "AWS_ENDPOINT_URL_SAGEMAKER": self.url, "AWS_ENDPOINT_URL_S3": self.s3_url,
        })
        if pool is not None or job.request["ResourceConfig"].get("KeepAlivePeriodInSeconds"):
            cache = (pool.cache_dir if pool else self.workdir / "pools" / job.name)
            cache.mkdir(parents=True, exist_ok=True)
            env["SAGEMAKER_MANAGED_WARMPOOL_CACHE_DIRECTORY"] = str(cache)
        env.update(self.child_env)
        env.update(job.request.get("Environment", {}))
        if self.command == "toolkit":
            argv = [str(Path(sys.executable).parent / "train")]
            env["SAGEMAKER_TRAINING_MODULE"] = "warmcv.modes.entry:train"
        else:
            argv = [sys.executable, "-m", "warmcv", "train", "--base-dir", str(base)]
        log_path = base.parent / "log.txt"
        with open(log_path, "wb") as log_file:
            process = subprocess.Popen(argv, env=env, stdout=log_file, stderr=subprocess.STDOUT, cwd=base.parent,
                                       start_new_session=True)
            job.process = process
            term_sent: float | None = None
            restart = False
            while process.poll() is None:
                if job.restart_event.is_set():
                    process.kill()
                    restart = True
                elif job.stop_event.is_set():
                    if term_sent is None:
                        process.send_signal(signal.SIGTERM)
                        term_sent = time.monotonic()
                    elif time.monotonic() - term_sent > self.timing.stop_grace:
                        process.kill()
                time.sleep(0.02)
            code = process.wait()
        job.exit_codes.append(code)
        text = log_path.read_text(errors="replace")
        job.logs.append(text)
        with self.lock:
            job.final_metrics = self._scrape_metrics(job, text)
        return code, job.stop_event.is_set(), restart

    def _scrape_metrics(self, job: FakeJob, text: str) -> list[dict]:
        metrics = []
        for definition in job.request.get("AlgorithmSpecification", {}).get("MetricDefinitions", []):
            values = [m.group(1) for m in re.finditer(definition["Regex"], text)]
            try:
                value = float(values[-1]) if values else None
            except ValueError:
                value = None
            if value is not None:
                metrics.append({"MetricName": definition["Name"], "Value": value, "Timestamp": time.time()})
        return metrics

    def _upload(self, job: FakeJob, base: Path) -> None:
        for source, file in ((base / "model", "model.tar.gz"), (base / "output" / "data", "output.tar.gz")):
            if file == "output.tar.gz" and any(f.skip_output_archive for f in job.faults):
                continue
            buffer = io.BytesIO()
            with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
                for path in sorted(source.rglob("*")):
                    tar.add(path, arcname=path.relative_to(source).as_posix(), recursive=False)
            bucket, _, key = self._output_uri(job, file)[len("s3://"):].partition("/")
            self.s3.put_object(Bucket=bucket, Key=key, Body=buffer.getvalue())

    def cleanup(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)
