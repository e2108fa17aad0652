"""The package's SageMaker service model behind HTTP, reached by real boto3 clients, running real containers.

moto's SageMaker completes every job at once, silently overwrites duplicate names, has no
StopTrainingJob, no warm pools and no throttling, so it cannot test a coordinator. This fake speaks the
same wire protocol as SageMaker (AWS JSON 1.1 on POST /, `X-Amz-Target: SageMaker.<Operation>`), so the
code under test uses an ordinary boto3 client pointed at it (endpoint_url, or AWS_ENDPOINT_URL_SAGEMAKER
in a child process). Every rule of the service (names, request limits, the warm-pool matching rule,
one job per pool, quotas and AWS's ResourceLimitExceeded message, rates, statuses, billing, output
locations) is the package's one model, `warmcv.training_service`; this module only drives it: each job
RUNS THE REAL CONTAINER CODE on the container contract in a temp dir:

    Starting (a cold start, or a short warm start when the model handed it a warm pool)
    -> Downloading (TrainingStartTime; channels copied from moto's S3, warm jobs included; the CheckpointConfig
       location's files copied to its local path, as on every start of a job, a restart included)
    -> Training (`python -m warmcv train --base-dir ...` or the toolkit's `train`, as a child process; the
       checkpoint directory copied to S3 while it runs, deletions included: rules.checkpoint_location)
    -> Uploading (model/ and output/data/ by the request's CompressionType)
    -> Completed | Failed (FailureReason "AlgorithmError: " + the failure file) | Stopped (SIGTERM, SIGKILL
       after a grace)

What a test may add on top, and AWS never does on purpose, lives here too: start delays, corrupted
data, a missing output archive, throttling and quota refusals on demand, restarts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
from botocore import xform_name
from botocore.exceptions import ClientError

from tests.fakes.s3 import CREDENTIALS, REGION
from warmcv.clock import SYSTEM_CLOCK
from warmcv.training_service import rules
from warmcv.training_service.api import SageMakerApi, client_error
from warmcv.training_service.service import ACCOUNT, TERMINAL, Quotas, TrainingJob, TrainingService, archive

__all__ = ["ACCOUNT", "FakeSageMaker", "FakeTiming", "Fault"]
REPO = Path(__file__).resolve().parents[2]
_TIMESTAMPS = ("CreationTimeAfter", "CreationTimeBefore", "LastModifiedTimeAfter", "LastModifiedTimeBefore")


@dataclass
class FakeTiming:
    cold_start: float = 0.8  # Starting without a warm pool
    warm_start: float = 0.05  # Starting on a reused warm pool
    stop_grace: float = 20.0  # SIGKILL this long after SIGTERM (SageMaker: 120 s)
    checkpoint_sync: float = 0.5  # ASSUMPTION (rules.CHECKPOINTS is silent): local checkpoints reach S3 this often


@dataclass
class Fault:
    """Something to do to the jobs whose CreateTrainingJob request `match`es (at most `times` jobs)."""

    match: Callable[[dict], bool]
    start_delay: float = 0.0  # extra seconds in Starting
    corrupt_data: bool = False  # garble the downloaded data: the real worker fails on it
    skip_output_archive: bool = False  # upload no output.tar.gz (the coordinator must fall back)
    times: int | None = None


@dataclass
class FakeJob:
    """A job's process side; its SageMaker side is the model's `TrainingJob` (`.model`)."""

    model: TrainingJob
    process: subprocess.Popen | None = None
    stop_event: threading.Event = field(default_factory=threading.Event)
    restart_event: threading.Event = field(default_factory=threading.Event)
    faults: list = field(default_factory=list)
    attempts: int = 0
    logs: list = field(default_factory=list)  # one text per attempt
    exit_codes: list = field(default_factory=list)  # the container's exit code, per attempt
    bases: list = field(default_factory=list)  # the contract's base dir, per attempt
    cache_dir: Path | None = None  # its warm pool's persistent cache
    checkpoints: dict = field(default_factory=dict)  # the checkpoint files as S3 holds them (name -> bytes)
    thread: threading.Thread | None = None

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def request(self) -> dict:
        return self.model.request

    @property
    def status(self) -> str:
        return self.model.status

    @property
    def secondary(self) -> str:
        return self.model.secondary

    @property
    def failure_reason(self) -> str | None:
        return self.model.failure_reason

    @property
    def warm_pool(self) -> dict | None:
        return self.model.warm_pool_status

    @property
    def final_metrics(self) -> list:
        return self.model.final_metrics


def _kind(request: dict) -> str:
    return {"coordinator": "coordinator", "worker": "fold"}.get((request.get("HyperParameters") or {}).get("mode"),
                                                                "job")


class FakeSageMaker:
    def __init__(self, s3_url: str, workdir: Path, timing: FakeTiming | None = None,
                 command: str = "cli", child_env: dict[str, str] | None = None):
        self.s3_url = s3_url
        self.workdir = Path(workdir)
        self.timing = timing or FakeTiming()
        self.command = command  # "cli": python -m warmcv train; "toolkit": sagemaker-training's `train`
        self.child_env = dict(child_env or {})
        self.lock = threading.RLock()
        self.instance_quota: dict[str, int] = {}  # '<type> for training job usage' (absent: enough)
        self.warm_pool_quota: dict[str, int] = {}  # '<type> for training warm pool usage' (absent: enough)
        self.service = TrainingService(SYSTEM_CLOCK, quotas=Quotas(self.instance_quota, self.warm_pool_quota),
                                       kind_of=_kind)
        self.api = SageMakerApi(self.service)
        self.jobs: dict[str, FakeJob] = {}
        self.faults: list[Fault] = []
        self.throttle_next: Counter = Counter()  # operation -> the next N requests are throttled
        self.refuse_next: Counter = Counter()  # operation -> the next N requests get ResourceLimitExceeded
        self.tuning_job_arns: dict[str, str] = {}
        self._cache_dirs: dict[int, Path] = {}  # warm pool id -> its persistent cache
        self.s3 = boto3.client("s3", endpoint_url=s3_url, region_name=REGION,
                               aws_access_key_id="testing", aws_secret_access_key="testing")
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                operation = self.headers.get("X-Amz-Target", "").split(".", 1)[-1]
                status, payload = fake.handle(operation, json.loads(body or b"{}"))
                data = json.dumps(payload, default=_json_default).encode()
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
    @property
    def calls(self) -> list:
        return self.service.calls

    def client(self, **config: Any):
        from botocore.config import Config

        return boto3.client("sagemaker", endpoint_url=self.url, region_name=REGION, aws_access_key_id="testing",
                            aws_secret_access_key="testing",
                            config=Config(retries={"mode": "adaptive", "total_max_attempts": 10}, **config))

    def limit_rate(self, operation: str, per_second: float, burst: int = 1) -> None:
        with self.lock:
            self.service.set_rate(operation, per_second, burst)

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
            return self.service.count(operation, outcome, prefix)

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
                return 200, self._dispatch(operation, name, params)
            except ClientError as error:
                details = error.response["Error"]
                status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 400)
                return status, {"__type": details["Code"], "message": details["Message"]}

    def _dispatch(self, operation: str, name: str, params: dict) -> dict:
        for counter, code, message in ((self.throttle_next, rules.THROTTLING_CODE, rules.THROTTLING_MESSAGE),
                                       (self.refuse_next, "ResourceLimitExceeded", self._refusal(params))):
            if counter[operation] > 0:
                counter[operation] -= 1
                self.service.record(operation, name, code)
                raise client_error(code, message, operation)
        for key in _TIMESTAMPS:
            if key in params:
                params[key] = datetime.fromtimestamp(float(params[key]), tz=UTC)
        if operation == "CreateTrainingJob":
            result = self.api.call(operation, name, lambda: {"TrainingJobArn": self._create(params)})
            self._start(name)
            return result
        method = getattr(self.api, xform_name(operation), None)
        if method is None:
            raise client_error("UnknownOperationException", f"{operation} is not implemented by the fake", operation)
        result = method(**params)
        if operation == "StopTrainingJob":
            self.jobs[name].stop_event.set()
        return result

    def _refusal(self, params: dict) -> str:
        instance_type = (params.get("ResourceConfig") or {}).get("InstanceType", "ml.m5.xlarge")
        return rules.resource_limit_message(rules.training_quota_name(instance_type), 0, 0, 1)

    def _create(self, params: dict) -> str:
        name = params.get("TrainingJobName", "")
        model = self.service.create(params, tuning_job_arn=self.tuning_job_arns.get(name))
        job = FakeJob(model)
        for fault in self.faults:
            if fault.match(params) and (fault.times is None or fault.times > 0):
                job.faults.append(fault)
                if fault.times is not None:
                    fault.times -= 1
        if model.pool_id is not None:
            job.cache_dir = self._cache_dirs.get(model.pool_id)
        self.jobs[name] = job
        return model.arn

    def _start(self, name: str) -> None:
        job = self.jobs[name]
        job.thread = threading.Thread(target=self._lifecycle, args=(job,), daemon=True, name=f"fake-{name}")
        job.thread.start()

    # -- running a job ---------------------------------------------------------------------------------
    def _lifecycle(self, job: FakeJob) -> None:
        try:
            while True:
                outcome = self._attempt(job)
                if outcome != "restart":
                    break
        except Exception as error:  # noqa: BLE001 - a bug in the fake must show as a failed job, not a hang
            with self.lock:
                self.service.finish(job.name, "Failed", f"InternalServerError: fake: {error!r}")

    def _wait(self, job: FakeJob, seconds: float) -> bool:
        """Sleep unless stopped; True if a stop (or restart) came."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if job.stop_event.is_set() or job.restart_event.is_set():
                return True
            time.sleep(0.02)
        return job.stop_event.is_set() or job.restart_event.is_set()

    def _advance(self, job: FakeJob, secondary: str, message: str) -> None:
        with self.lock:
            self.service.advance(job.name, secondary, message)

    def _finish(self, job: FakeJob, status: str, reason: str | None = None) -> str:
        with self.lock:
            self.service.finish(job.name, status, reason)
            if job.model.pool_id is not None and job.cache_dir is not None:
                self._cache_dirs[job.model.pool_id] = job.cache_dir
        return status

    def _attempt(self, job: FakeJob) -> str:
        job.attempts += 1
        if job.attempts > 1:
            job.restart_event.clear()
            self._advance(job, "Restarting", "Restarting the training job")
        start = self.timing.warm_start if job.model.warm else self.timing.cold_start
        if self._wait(job, start + sum(f.start_delay for f in job.faults)):
            if job.restart_event.is_set():
                return "restart"
            return self._finish(job, "Stopped")
        base = self.workdir / job.name / f"attempt-{job.attempts}" / "ml"
        job.bases.append(base)
        self._advance(job, "Downloading", "Downloading input data")  # TrainingStartTime: billing starts
        self._download(job, base)
        self._advance(job, "Training", "Training image download completed. Training in progress.")
        code, stopped, restart = self._run_container(job, base)
        if restart:
            return "restart"
        if stopped:
            self._upload(job, base)  # TrainingEndTime of a stopped job: "after model artifacts are uploaded"
            return self._finish(job, "Stopped")
        if code != 0:
            failure = base / "output" / "failure"
            reason = failure.read_text() if failure.exists() else f"exit code {code}"
            return self._finish(job, "Failed", f"AlgorithmError: {reason}")
        self._advance(job, "Uploading", "Uploading generated training model")
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
        self._restore_checkpoints(job, base)
        (base / "input/config/resourceconfig.json").write_text(json.dumps(
            {"current_host": "algo-1", "hosts": ["algo-1"], "current_group_name": "homogeneousCluster",
             "current_instance_type": r["ResourceConfig"]["InstanceType"], "network_interface_name": "eth0"}))

    def _run_container(self, job: FakeJob, base: Path) -> tuple[int, bool, bool]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SM_", "SAGEMAKER_", "TRAINING_JOB"))}
        env.update(CREDENTIALS)
        env.update({
            "PYTHONPATH": os.pathsep.join([str(REPO / "container_src"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
            "PYTHONUNBUFFERED": "1", "SAGEMAKER_BASE_DIR": str(base), "SM_STUDIO_LOCAL_MODE": "true",
            "TRAINING_JOB_NAME": job.name, "TRAINING_JOB_ARN": job.model.arn,
            "AWS_ENDPOINT_URL_SAGEMAKER": self.url, "AWS_ENDPOINT_URL_S3": self.s3_url,
        })
        if job.model.warm or job.model.keep_alive:
            job.cache_dir = job.cache_dir or self.workdir / "pools" / job.name
            job.cache_dir.mkdir(parents=True, exist_ok=True)
            env["SAGEMAKER_MANAGED_WARMPOOL_CACHE_DIRECTORY"] = str(job.cache_dir)
        env.update(self.child_env)
        env.update(job.request.get("Environment", {}))
        if self.command == "toolkit":
            argv = [str(Path(sys.executable).parent / "train")]
            env["SAGEMAKER_TRAINING_MODULE"] = "warmcv.modes.entry:train"
        else:
            argv = [sys.executable, "-m", "warmcv", "train", "--base-dir", str(base)]
        log_path = base.parent / "log.txt"
        synced = job.checkpoints
        next_sync = time.monotonic() + self.timing.checkpoint_sync
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
                if time.monotonic() >= next_sync and not restart:
                    self._sync_checkpoints(job, base, synced)
                    next_sync = time.monotonic() + self.timing.checkpoint_sync
                time.sleep(0.02)
            code = process.wait()
        if not restart:  # a killed instance uploads nothing more
            self._sync_checkpoints(job, base, synced)
        job.exit_codes.append(code)
        text = log_path.read_text(errors="replace")
        job.logs.append(text)
        with self.lock:
            self.service.set_final_metrics(job.name, self._scrape_metrics(job, text))
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

    def _checkpoint_dir(self, job: FakeJob, base: Path) -> tuple[str, Path] | None:
        location = rules.checkpoint_location(job.request)
        if location is None:
            return None
        uri, local = location
        default = rules.CHECKPOINT_LOCAL_PATH
        relative = local.rstrip("/")[len("/opt/ml/"):] if local.startswith("/opt/ml/") else default[len("/opt/ml/"):]
        return uri, base / relative

    def _restore_checkpoints(self, job: FakeJob, base: Path) -> None:
        """rules.CHECKPOINTS: what is in the S3 location when the job starts is copied to the local path."""
        found = self._checkpoint_dir(job, base)
        if found is None:
            return
        uri, local = found
        local.mkdir(parents=True, exist_ok=True)
        bucket, _, prefix = uri[len("s3://"):].partition("/")
        prefix = prefix.rstrip("/") + "/" if prefix else ""
        job.checkpoints = {}
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                name = item["Key"][len(prefix):]
                path = local / name
                path.parent.mkdir(parents=True, exist_ok=True)
                self.s3.download_file(bucket, item["Key"], str(path))
                job.checkpoints[name] = path.read_bytes()

    def _sync_checkpoints(self, job: FakeJob, base: Path, synced: dict[str, bytes]) -> None:
        """rules.CHECKPOINTS: new or changed local checkpoints are written to S3, deleted ones deleted there."""
        found = self._checkpoint_dir(job, base)
        if found is None:
            return
        uri, local = found
        bucket, _, prefix = uri[len("s3://"):].partition("/")
        prefix = prefix.rstrip("/") + "/" if prefix else ""
        present = {p.relative_to(local).as_posix(): p for p in local.rglob("*") if p.is_file()} if local.is_dir() else {}
        for name, path in present.items():
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue
            if synced.get(name) != data:
                self.s3.put_object(Bucket=bucket, Key=prefix + name, Body=data)
                synced[name] = data
        for name in [n for n in synced if n not in present]:
            self.s3.delete_object(Bucket=bucket, Key=prefix + name)
            del synced[name]

    def _upload(self, job: FakeJob, base: Path) -> None:
        """model/ and output/data/ where the request's CompressionType puts them (rules.output_locations)."""
        where = rules.output_locations(job.request, job.name)
        for source, kind in ((base / "model", "model"), (base / "output" / "data", "output")):
            if kind == "output" and any(f.skip_output_archive for f in job.faults):
                continue
            files = {p.relative_to(source).as_posix(): p.read_bytes() for p in sorted(source.rglob("*")) if p.is_file()}
            objects = {where[kind]: archive(files)} if where["compression"] == "GZIP" else {
                where[kind] + name: data for name, data in files.items()}
            for uri, data in objects.items():
                bucket, _, key = uri[len("s3://"):].partition("/")
                self.s3.put_object(Bucket=bucket, Key=key, Body=data)

    def cleanup(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.timestamp()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
