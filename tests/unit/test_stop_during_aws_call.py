"""SIGTERM while a boto3 call is in flight must stop the coordinator, not be retried away by botocore.

botocore wraps any `Exception` raised while it sends a request into a retryable HTTPClientError and sends
the request again. A stop signal raised as an ordinary exception was therefore swallowed, with SIGTERM
already ignored from then on: the coordinator ran on and its folds were orphaned.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
from botocore.config import Config

from warmcv.aws.training_jobs import TrainingJobsApi
from warmcv.errors import StopRequested
from warmcv.modes.signals import stop_on_signals


@pytest.fixture
def slow_sagemaker():
    requests: list[float] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            requests.append(time.monotonic())
            time.sleep(0.6)
            body = b'{"TrainingJobArn": "arn:aws:sagemaker:us-east-1:123456789012:training-job/x"}'
            try:
                self.send_response(200)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                pass  # the client went away: that is the point of the test

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    client = boto3.client("sagemaker", endpoint_url=f"http://127.0.0.1:{server.server_address[1]}",
                          region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x",
                          config=Config(retries={"mode": "adaptive", "total_max_attempts": 8}))
    yield client, requests
    server.shutdown()


def test_sigterm_during_a_create_call_raises_stop_requested_and_is_not_retried(slow_sagemaker):
    client, requests = slow_sagemaker
    api = TrainingJobsApi(client)
    timer = threading.Timer(0.25, os.kill, (os.getpid(), signal.SIGTERM))
    with stop_on_signals():
        timer.start()
        with pytest.raises(StopRequested, match="SIGTERM"):
            api.create_training_job({
                "TrainingJobName": "x", "RoleArn": "arn:aws:iam::123456789012:role/r",
                "AlgorithmSpecification": {"TrainingImage": "i", "TrainingInputMode": "File"},
                "OutputDataConfig": {"S3OutputPath": "s3://b/o"}, "StoppingCondition": {"MaxRuntimeInSeconds": 60},
                "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 1},
            })
    timer.join()
    assert len(requests) == 1  # one request, no retry behind our back


def test_stop_requested_is_not_an_exception_that_library_code_swallows():
    assert not issubclass(StopRequested, Exception)
    try:
        raise StopRequested("received SIGTERM")
    except Exception:  # noqa: BLE001 - exactly what library code does
        pytest.fail("an `except Exception` caught the stop")
    except StopRequested:
        pass
