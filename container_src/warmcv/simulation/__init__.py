"""SageMaker tuning in simulated time: the real coordinator and fold runner, M trials wide, N rounds deep.

- `scheduler`: virtual time for real blocking code (actors are threads that wait only on the clock).
- `sagemaker`: a boto3-shaped SageMaker training service (jobs, warm pools, quotas, rate limits).
- `clients`: one process's boto3 client over it, with botocore's retry modes in simulated time.
- `workload`: how long jobs start and train, how often they fail, what the folds score.
- `tuning`: the tuner (AMT) launching coordinator jobs that run the real `cross_validate` and
  `SageMakerFoldRunner`; `simulate()` returns a `SimulationReport`.
- `plan`: closed-form estimates of the same quantities (`warmcv plan`).
"""
