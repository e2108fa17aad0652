"""One model of SageMaker's training service, following AWS's documented rules (each cited where it is coded).

- `rules`: the documented rules as data and pure functions (warm-pool matching, quotas and their names,
  request limits, rates, billing, output locations, the tuner's limits), each with its source page.
- `rates`: the account's request rates (a token bucket per operation).
- `service`: `TrainingService`, the jobs and warm pools of one account on any clock, moved along by
  `JobPlan`s (a simulation) or by a driver (the HTTP fake in tests/fakes that runs real worker processes).
- `api`: boto3-shaped SageMaker and S3 clients over it (`ClientError`s with SageMaker's codes).

Nothing here calls AWS; the coordinator's real calls live in `warmcv.aws`. Import from the modules (this
package imports nothing itself, so `rules` stays as light as the declarations that use it).
"""
