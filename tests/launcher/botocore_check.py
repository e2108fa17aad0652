"""Every step of a pipeline definition validated against botocore's SageMaker model, offline.

A definition holds each step's request as SageMaker Pipelines will send it (CreateTrainingJob for a Training
step, and so on), except for what the service fills in at run time: the job's name, and the values of
pipeline parameters, properties and JSON reads (`Get`, `Std:Join`, `Std:JsonGet`). Those become placeholders
of the type the API expects there; then botocore's own ParamValidator checks the request: unknown keys,
missing required members, types, minimums.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import botocore.session
from botocore.validate import ParamValidator

# Step type -> (the API operation SageMaker Pipelines calls, the name it fills in itself)
OPERATIONS = {"Processing": ("CreateProcessingJob", "ProcessingJobName"),
              "Training": ("CreateTrainingJob", "TrainingJobName"),
              "Tuning": ("CreateHyperParameterTuningJob", "HyperParameterTuningJobName"),
              "Transform": ("CreateTransformJob", "TransformJobName"), "Model": ("CreateModel", "ModelName"),
              "RegisterModel": ("CreateModelPackage", None)}
EXPRESSIONS = ("Get", "Std:Join", "Std:JsonGet")


def _placeholder(shape: Any) -> Any:
    kind = shape.type_name
    if kind == "string":
        return "x" * max(1, shape.metadata.get("min", 1))
    if kind in ("integer", "long"):
        return max(1, shape.metadata.get("min", 1))
    if kind in ("float", "double"):
        return 0.5
    if kind == "boolean":
        return True
    raise TypeError(f"a pipeline expression where the API takes a {kind}")


def resolved(value: Any, shape: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in EXPRESSIONS:
        return _placeholder(shape)
    if shape.type_name == "structure" and isinstance(value, dict):
        return {k: resolved(v, shape.members[k]) if k in shape.members else v for k, v in value.items()}
    if shape.type_name == "list" and isinstance(value, list):
        return [resolved(v, shape.member) for v in value]
    if shape.type_name == "map" and isinstance(value, dict):
        return {k: resolved(v, shape.value) for k, v in value.items()}
    return value


def all_steps(definition: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for step in definition["Steps"]:
        yield step
        for branch in ("IfSteps", "ElseSteps"):
            yield from all_steps({"Steps": step.get("Arguments", {}).get(branch, [])})


def problems(definition: dict[str, Any]) -> dict[str, str]:
    """Step name -> botocore's report, for every step whose request botocore rejects (empty: all valid)."""
    model = botocore.session.get_session().get_service_model("sagemaker")
    found = {}
    for step in all_steps(definition):
        if step["Type"] not in OPERATIONS:
            continue
        operation, name = OPERATIONS[step["Type"]]
        shape = model.operation_model(operation).input_shape
        request = dict(step["Arguments"])
        if name:
            request.setdefault(name, "filled-in-by-the-pipeline")
        report = ParamValidator().validate(resolved(request, shape), shape)
        if report.has_errors():
            found[step["Name"]] = report.generate_report()
    return found


def validated_steps(definition: dict[str, Any]) -> list[str]:
    return [s["Name"] for s in all_steps(definition) if s["Type"] in OPERATIONS]
