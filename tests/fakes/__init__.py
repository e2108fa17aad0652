"""Test doubles that real AWS clients talk to over HTTP: moto's S3 and a small SageMaker training service."""
