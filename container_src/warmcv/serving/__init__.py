"""Serve mode: the model behind SageMaker's inference contract (batch transform and real-time endpoints).

settings.py reads the SageMaker environment (port, payload limit, concurrency), codec.py turns request
bodies into feature tables and predictions into response bodies, app.py is the Flask application
(/ping, /invocations, /execution-parameters), server.py runs it under gunicorn. docs/serving.md is the
user-facing description of the content types.
"""
