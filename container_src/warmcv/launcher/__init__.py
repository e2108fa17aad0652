"""The launcher: the SageMaker Pipeline, the tuner, the Lambda handlers and the warm-pool release.

Only `tuner` and `pipeline` need the SageMaker Python SDK (the `launcher` extra, about 1 GB); the
config, the IAM documents, the Lambda handlers and the warm-pool release use the standard library and
boto3, so they work (and are tested) without it. Nothing here is imported by the training image.
This module imports nothing: the Lambda deployment zips it with the handlers.
"""
