"""Every pipeline file's DAGs, for ``dags/pipelines.py``. The bad files are raised for ``dags/pipeline_errors.py``
by :func:`sagemaker_vision.core.pipeline_file.raise_for_bad_files`, which imports no builder (a cheaper parse).

Two DAG files because Airflow records an import error per DAG file and marks every DAG of that
file stale: a bad pipeline file must not take the good pipelines down with it. So the DAGs file
builds the good pipelines and never raises, and the errors file raises, naming each bad file,
its line and its field, and holds no DAG to mark stale.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import ModuleType

from airflow.sdk import DAG

from sagemaker_vision.core.pipeline_file import PipelineDefinition, load_pipelines
from sagemaker_vision.dags import load_test, pipeline, promote, retrain, right_size, teardown

# One module per DAG kind; each DAG id is "<pipeline>.<KIND>".
BUILDERS: tuple[ModuleType, ...] = (pipeline, retrain, load_test, teardown, promote, right_size)


def kinds() -> list[str]:
    return [builder.KIND for builder in BUILDERS]


def _wanted(definition: PipelineDefinition, dag_id: str | None) -> list[ModuleType]:
    """The builders to run: all of them, or only the one a task's worker needs (``dag_id``)."""
    if dag_id is None:
        return list(BUILDERS)
    return [builder for builder in BUILDERS if definition.dag_id(builder.KIND) == dag_id]


def build_pipelines(definitions: Iterable[PipelineDefinition] | None = None, *,
                    only_dag_id: str | None = None) -> dict[str, DAG]:
    """The DAGs of every good pipeline file, by id. ``only_dag_id`` (a worker running one task of
    one DAG, from Airflow's parsing context) builds that DAG alone."""
    if definitions is None:
        definitions, _errors = load_pipelines()
    dags: dict[str, DAG] = {}
    for definition in definitions:
        for builder in _wanted(definition, only_dag_id):
            built = builder.build(definition)
            dags[built.dag_id] = built
    return dags
