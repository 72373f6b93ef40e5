"""core/loadtest: the load test without Airflow or AWS: its model and report, payload checks, the
thread and asyncio engines, the worker-process pool and the chart.

Like the rest of the core it imports only the core, so load-test worker processes never import
Airflow; the ``invoke`` callables come from :mod:`sagemaker_vision.hooks.sagemaker_runtime`.
"""
