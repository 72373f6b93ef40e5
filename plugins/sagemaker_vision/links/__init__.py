"""links: the AWS console links (training jobs, their logs, endpoints, labeling jobs), which the
operators persist with ``BaseAwsLink.persist``; :mod:`sagemaker_vision.plugin` registers them.

They import only the core and the amazon provider's ``BaseAwsLink``, and read none of Airflow's
internal tables.
"""
