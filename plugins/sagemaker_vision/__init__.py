"""sagemaker_vision: images to a load-tested SageMaker object-detection endpoint, on Airflow 3.

Each stage has one module: ``config`` (the typed pipeline config), ``costs``, ``s3_sync``,
``labels``, ``algorithms``, ``requests``, ``deploy``, ``inference`` and ``load_test``.
DAG files in ``dags/`` only wire these together.
"""

__version__ = "0.1.0"
