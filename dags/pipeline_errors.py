"""The import error of every bad pipeline file (include/pipelines/*.yaml), naming its line and field.

It holds no DAG: Airflow marks the DAGs of a file with an import error stale, so the good
pipelines' DAGs live in `dags/pipelines.py`, which never raises for a bad file.
"""

from __future__ import annotations

from sagemaker_vision.core.pipeline_file import raise_for_bad_files  # no DAG builder: a cheap parse

raise_for_bad_files()
