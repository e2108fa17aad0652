"""Release the warm pools a run left behind, so the last round bills no idle instances.

A fold job keeps its instance for `keep_alive_seconds` after it ends, so the next trial's fold can
reuse it. After the last round nothing will: every pool still `Available` is an idle instance billed
until the keep-alive runs out. This finds the run's jobs whose pools are still available and sets
their keep-alive to 0 (UpdateTrainingJob), which terminates the pool at once.

Which jobs are the run's: fold jobs carry warmcv's tags (`warmcv.aws.tags`, set by the fold runner)
naming their tuning job and parent coordinator; the final training job is named by the caller (the
pipeline passes its name). ListTrainingJobs allows about 2 requests/s per account and cannot be
raised, so the search asks only for jobs whose pool is `Available` (few at any time) before reading
any tags, and the client uses botocore's adaptive retry mode rather than hand-written sleeps.

Standard library and boto3 only: this module runs in AWS Lambda (the release step) as well as in
`warmcv release-warm-pools`.
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from warmcv.aws import tags as tag_keys

log = logging.getLogger(__name__)
AVAILABLE = "Available"
RETRY_CONFIG = {"mode": "adaptive", "total_max_attempts": 10}


def sagemaker_client(region: str | None = None) -> Any:
    """A SageMaker client whose retries absorb ListTrainingJobs' ~2 requests/s limit (adaptive mode)."""
    import boto3
    from botocore.config import Config

    return boto3.client("sagemaker", region_name=region, config=Config(retries=dict(RETRY_CONFIG)))


@dataclass(frozen=True)
class RunSelector:
    """Which jobs belong to the run: any one of these matching is enough.

    Names compare without case: SageMaker job names are unique regardless of case, and an ARN carries
    the name lower-cased ("arn:...:training-job/warmcv-final-abc" for job "warmcv-final-ABC"), so a name
    taken from an ARN must still match the job's own spelling.
    """

    tuning_jobs: frozenset[str] = frozenset()  # fold jobs tagged warmcv:tuning-job=<name>
    parent_jobs: frozenset[str] = frozenset()  # fold jobs tagged warmcv:parent-job=<name>
    training_jobs: frozenset[str] = frozenset()  # jobs named explicitly (the final training)
    any_warmcv_job: bool = False  # every job warmcv tagged (fold or final), whatever its run

    def __post_init__(self) -> None:
        if not (self.tuning_jobs or self.parent_jobs or self.training_jobs or self.any_warmcv_job):
            raise ValueError("name a tuning job, a parent (coordinator) job or a training job to release")
        for name in ("tuning_jobs", "parent_jobs", "training_jobs"):
            object.__setattr__(self, name, frozenset(v.lower() for v in getattr(self, name)))

    def names_job(self, name: str) -> bool:
        return name.lower() in self.training_jobs

    def matches(self, name: str, tags: Mapping[str, str]) -> bool:
        if self.names_job(name):
            return True
        if (tags.get(tag_keys.TUNING_JOB, "").lower() in self.tuning_jobs
                or tags.get(tag_keys.PARENT_JOB, "").lower() in self.parent_jobs):
            return True
        return self.any_warmcv_job and tag_keys.ROLE in tags

    @property
    def needs_tags(self) -> bool:
        return bool(self.tuning_jobs or self.parent_jobs or self.any_warmcv_job)


@dataclass
class ReleaseReport:
    released: list[str] = field(default_factory=list)
    already_gone: list[str] = field(default_factory=list)  # the pool was reused or ended before our update
    # Jobs whose tags could not be read (access denied, deleted, throttled past the retries): left alone,
    # not a reason to leave every other pool of the run billing.
    unreadable: list[str] = field(default_factory=list)
    examined: int = 0  # jobs with an available pool that were checked
    requests: dict[str, int] = field(default_factory=dict)  # API calls made, by operation

    def count(self, operation: str) -> None:
        self.requests[operation] = self.requests.get(operation, 0) + 1

    def to_dict(self) -> dict[str, Any]:
        return {"released": self.released, "already_gone": self.already_gone, "unreadable": self.unreadable,
                "examined": self.examined,
                "requests": dict(sorted(self.requests.items()))}


def available_pools(client: Any, report: ReleaseReport,
                    created_after: _dt.datetime | None = None) -> Iterator[dict[str, Any]]:
    """Training jobs whose warm pool is still available, newest first, one page at a time."""
    kwargs: dict[str, Any] = {"WarmPoolStatusEquals": AVAILABLE, "MaxResults": 100,
                              "SortBy": "CreationTime", "SortOrder": "Descending"}
    if created_after is not None:
        kwargs["CreationTimeAfter"] = created_after
    while True:
        report.count("ListTrainingJobs")
        page = client.list_training_jobs(**kwargs)
        yield from page.get("TrainingJobSummaries", [])
        token = page.get("NextToken")
        if not token:
            return
        kwargs["NextToken"] = token


def job_tags(client: Any, arn: str, report: ReleaseReport) -> dict[str, str]:
    tags: dict[str, str] = {}
    kwargs: dict[str, Any] = {"ResourceArn": arn, "MaxResults": 100}
    while True:
        report.count("ListTags")
        page = client.list_tags(**kwargs)
        tags.update({t["Key"]: t.get("Value", "") for t in page.get("Tags", [])})
        token = page.get("NextToken")
        if not token:
            return tags
        kwargs["NextToken"] = token


def release_job(client: Any, name: str, report: ReleaseReport) -> bool:
    """Set the job's keep-alive to 0; False if the pool was already reused or gone (not an error)."""
    from botocore.exceptions import ClientError

    report.count("UpdateTrainingJob")
    try:
        client.update_training_job(TrainingJobName=name, ResourceConfig={"KeepAlivePeriodInSeconds": 0})
    except ClientError as error:
        # A pool that was reused or expired between the listing and now cannot be updated: nothing is billed.
        if error.response.get("Error", {}).get("Code") in ("ValidationException", "ResourceNotFound"):
            log.info("%s: warm pool no longer available (%s)", name, error.response["Error"].get("Message", ""))
            return False
        raise
    return True


def release_warm_pools(client: Any, selector: RunSelector, created_after: _dt.datetime | None = None,
                       dry_run: bool = False) -> ReleaseReport:
    """Release every available warm pool of the run's jobs; returns what was done and the calls made."""
    from botocore.exceptions import ClientError

    report = ReleaseReport()
    for summary in available_pools(client, report, created_after):
        name = summary["TrainingJobName"]
        status = (summary.get("WarmPoolStatus") or {}).get("Status", AVAILABLE)
        if status != AVAILABLE:
            continue
        report.examined += 1
        tags: dict[str, str] = {}
        if selector.needs_tags and not selector.names_job(name):
            try:
                tags = job_tags(client, summary["TrainingJobArn"], report)
            except ClientError as error:
                log.warning("%s: cannot read its tags (%s); its warm pool is left alone", name,
                            error.response.get("Error", {}).get("Code", error))
                report.unreadable.append(name)
                continue
        if not selector.matches(name, tags):
            continue
        if dry_run:
            report.released.append(name)
            continue
        (report.released if release_job(client, name, report) else report.already_gone).append(name)
    log.info("warm pools: %d released, %d already gone, %d with unreadable tags, %d available pools examined, "
             "requests %s", len(report.released), len(report.already_gone), len(report.unreadable), report.examined,
             report.requests)
    return report


def names(values: Iterable[str] | None) -> frozenset[str]:
    """Job names from a list that may hold ARNs (`.../training-job/<name>`) or empty strings."""
    return frozenset(v.rsplit("/", 1)[-1] for v in values or () if v)

