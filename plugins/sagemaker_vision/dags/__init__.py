"""The DAG builders: each module turns one validated pipeline file into one DAG (``build``).

``dags/pipelines.py``, the one DAG file, calls :func:`sagemaker_vision.dags.factory.build_pipelines`.
"""
