"""Every pipeline file's DAGs, for ``dags/pipelines.py``; the bad files, for ``dags/pipeline_errors.py``.

Two DAG files because Airflow records an import error per DAG file and marks every DAG of that
file stale: a bad pipeline file must not take the good pipelines down with it. So the DAGs file
builds the good pipelines and never raises, and the errors file raises, naming each bad file,
its line and its field, and holds no DAG to mark stale.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import ModuleType

from airflow.sdk import DAG

from sagemaker_vision.core.pipeline_file import PipelineDefinition, PipelineFileError, load_pipelines
from sagemaker_vision.dags import load_test, pipeline, promote, retrain, teardown

# One module per DAG kind; each DAG id is "<pipeline>.<KIND>".
BUILDERS: tuple[ModuleType, ...] = (pipeline, retrain, load_test, teardown, promote)


class PipelineFilesError(Exception):
    """The import error of ``dags/pipeline_errors.py``: every bad pipeline file, one per line."""

    def __init__(self, errors: Iterable[PipelineFileError]):
        self.errors = list(errors)
        lines = "\n".join(f"  {error}" for error in self.errors)
        super().__init__(f"{len(self.errors)} pipeline file(s) refused; their DAGs are not loaded "
                         f"(the other pipelines are):\n{lines}")


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


def raise_for_bad_files() -> None:
    """Raise :class:`PipelineFilesError` when a pipeline file is bad (``dags/pipeline_errors.py``)."""
    _good, bad = load_pipelines()
    if bad:
        raise PipelineFilesError(bad)
