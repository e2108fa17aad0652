"""Every enumerated setting, declared once. Plain typing (no pydantic): the CLI's parser imports this."""

from __future__ import annotations

from typing import Literal, get_args

from warmcv.declarations.catalog import MAX_KEEP_ALIVE_SECONDS

Task = Literal["auto", "binary", "multiclass", "regression"]
Splitter = Literal["auto", "stratified", "kfold", "group", "stratified_group", "time"]
# SageMaker's ModelApprovalStatus values (CreateModelPackage), used by the local registry too.
ApprovalStatus = Literal["PendingManualApproval", "Approved", "Rejected"]
Sampler = Literal["tpe", "random", "gp"]
PredictOutput = Literal["probabilities", "labels"]
# Fold-level pruning rules (warmcv.cv.pruning).
PruneRule = Literal["paired-bound", "wilcoxon"]
# Whether a new run prunes unless told: decided by bench/pruning.py's measurement (see docs/run.md).
PRUNE_BY_DEFAULT = False

TASKS: tuple[str, ...] = get_args(Task)
SPLITTERS: tuple[str, ...] = get_args(Splitter)
APPROVAL_STATUSES: tuple[str, ...] = get_args(ApprovalStatus)
SAMPLERS: tuple[str, ...] = get_args(Sampler)
PREDICT_OUTPUTS: tuple[str, ...] = get_args(PredictOutput)
PRUNE_RULES: tuple[str, ...] = get_args(PruneRule)

MIN_FOLDS, MAX_FOLDS = 2, 100
KEEP_ALIVE_RANGE = (0, MAX_KEEP_ALIVE_SECONDS)
