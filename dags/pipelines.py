"""Every pipeline of include/pipelines/*.yaml, as Airflow DAGs: one file per detector.

Each file `<name>.yaml` yields the DAGs `<name>.pipeline`, `<name>.retrain`, `<name>.load_test`,
`<name>.teardown`, `<name>.promote_challenger` and `<name>.right_size`, and the labels Asset
`<name>.labels`. A bad file
yields none of them and shows as the import error of `dags/pipeline_errors.py`, naming the file,
the line and the field; the other pipelines load.

A worker running one task builds only that task's DAG (Airflow's parsing context).
"""

from __future__ import annotations

from airflow.sdk import get_parsing_context

from sagemaker_vision.dags.factory import build_pipelines

globals().update(build_pipelines(only_dag_id=get_parsing_context().dag_id))
