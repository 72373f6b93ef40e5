"""sagemaker_vision: images to a load-tested SageMaker object-detection endpoint, on Airflow 3.

Layers, imports running one way only: ``pipeline`` (``PipelineConfig``'s tasks and task groups)
over ``operators`` and ``sensors``, over ``triggers`` and ``links``, over ``hooks`` and
``waiters``, over ``core`` (pure, no Airflow). ``plugin`` holds only the AirflowPlugin.
DAG files in ``dags/`` only wire the pipeline's tasks together.
"""

__version__ = "0.1.0"
