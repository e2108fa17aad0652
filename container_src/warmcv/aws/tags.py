"""Tag keys warmcv puts on the training jobs it creates, declared once.

Fold jobs are created by a coordinator, not by the tuner, so SageMaker does not link them to the
trial or the tuning job. These tags do: they let a user find a trial's folds in the console, and let
`warmcv release-warm-pools` find every warm pool a run left behind and release it.
"""

TAG_PREFIX = "warmcv:"
PARENT_JOB = "warmcv:parent-job"  # the coordinator training job that created this fold job
TUNING_JOB = "warmcv:tuning-job"  # the hyperparameter tuning job of that coordinator, if any
FOLD = "warmcv:fold"  # the fold index this job trains
ROLE = "warmcv:role"  # "fold" for fold jobs, "final" for the training on all data
ROLE_FOLD = "fold"
ROLE_FINAL = "final"
# Keys in the reserved aws: namespace cannot be set by users, so they are never copied to a fold job.
RESERVED_PREFIX = "aws:"
# Keys in sagemaker: are SageMaker's own bookkeeping (Pipelines tags the jobs of its steps with them): they
# describe the coordinator's step, not the fold jobs, so they are not copied either.
SAGEMAKER_PREFIX = "sagemaker:"
