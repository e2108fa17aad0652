"""The launcher: the SageMaker Pipeline, the tuner, the Lambda handlers and the warm-pool release.

Only `tuner`, `pipeline` and `sdk` need the SageMaker Python SDK (the `launcher` extra, about 1 GB);
the config, the IAM documents, the Lambda deployment and the warm-pool release work (and are tested)
without it, and the Lambda handlers import nothing but the standard library and boto3. Nothing here is
imported by the training image.
This module imports nothing: the Lambda deployment zips it with the handlers.
"""
