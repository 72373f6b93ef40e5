"""core: the pure logic, one module per domain (validation, naming, params and config, costs,
manifests, converters, request builders, deployment planning, quality gate, the load engine).

It imports no Airflow and nothing above it (hooks, triggers, operators, pipeline) and calls no AWS;
its only botocore use is the client ``Config`` of :mod:`sagemaker_vision.core.aws_config`.
"""
