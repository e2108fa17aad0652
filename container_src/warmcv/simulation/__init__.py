"""SageMaker tuning in simulated time: the real coordinator and fold runner, M trials wide, N rounds deep.

- `scheduler`: virtual time for real blocking code (actors are threads that wait only on the clock).
- SageMaker itself is the package's one model of its training service, `warmcv.training_service` (jobs,
  statuses, warm pools, quotas, rates, billing, each documented rule citing its source), driven here in
  simulated time through `JobPlan`s.
- `clients`: one process's boto3 client over it, with botocore's retry modes in simulated time.
- `workload`: how long jobs start (and how much of that is billed downloads) and train, how often they
  fail, what the folds score.
- `tuning`: the tuner (AMT) launching coordinator jobs that run the real `cross_validate` and
  `SageMakerFoldRunner`; `simulate()` returns a `SimulationReport`.
- `plan`: closed-form estimates of the same quantities, and the assumptions behind them (`warmcv plan`).
"""
