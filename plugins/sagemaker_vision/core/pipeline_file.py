"""Pipeline files: one YAML file per detector (``include/pipelines/<name>.yaml``). No Airflow.

A file names a pipeline by its own name (``defects.yaml`` is the pipeline ``defects``) and holds
its settings in sections, each key the name of one param of ``core/params.py``::

    schedule: "0 0 * * 0"            # the pipeline DAG's weekly data intervals; null: manual only
    retrain_schedule: "0 6 * * 1"    # the retrain DAG's cron (it also runs on new labels); null: labels only
    data:       {bucket: ..., prefix: ..., image_source: ..., budget_usd: 50}
    labeling:   {label_backend: import, import_manifest: ..., label_classes: [...]}
    training:   {epochs: 30, ...}
    deployment: {endpoint_type: serverless, ...}
    load_test:  {load_test_requests: 200, slo_p95_ms: 2000, ...}

A file is validated by the same specs as ``PipelineConfig``: each value against its param's
schema, then the whole through ``PipelineConfig.from_params``. A problem raises
:class:`PipelineFileError`, naming the file, the line and the field. What a file leaves out
takes the param's default (the bucket and role from the environment, as before).

Files are hostile until checked: at most ``MAX_FILE_BYTES``, UTF-8, no YAML aliases (no
"billion laughs"), no duplicate keys, no key that names no param.
"""

from __future__ import annotations

import difflib
import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from croniter import croniter
from yaml.constructor import SafeConstructor

from sagemaker_vision.core.config import PipelineConfig, RunInfo
from sagemaker_vision.core.params import ENV_DEFAULTS, PER_RUN_PARAMS, ParamSpec, param_specs
from sagemaker_vision.core.task_ids import pipeline_dag_id
from sagemaker_vision.core.validate import PROJECT_ROOT, ConfigError

PIPELINES_DIR_ENV = "SAGEMAKER_VISION_PIPELINES_DIR"
SUFFIX = ".yaml"
MAX_FILE_BYTES = 64 * 1024
# The DAG's user-defined macro that carries its pipeline file's settings into every task
# (dags/common.py sets it; hooks/config.py reads it from the task's DAG).
SETTINGS_MACRO = "pipeline_settings"
# File section -> the ParamSpec.section whose params it holds.
SECTIONS = {"data": "Data", "labeling": "Labeling", "training": "Training", "deployment": "Deployment",
            "load_test": "Load test"}
SCHEDULES = {"schedule": "0 0 * * 0", "retrain_schedule": "0 6 * * 1"}
# Validation needs a region when the file leaves it to the connection (empty region).
_VALIDATION_REGION = "us-east-1"
# libyaml's parser when PyYAML has it (the same events and marks, ~10x faster), else PyYAML's own.
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_VALIDATORS: dict[str, Any] = {}  # a schema (as JSON) -> its checked jsonschema validator


class PipelineFileError(ValueError):
    """A bad pipeline file: ``<file>, line <n>: <field>: <problem>``."""

    def __init__(self, path: str, line: int, field_name: str, message: str):
        self.path, self.line, self.field, self.message = path, line, field_name, message
        super().__init__(f"{path}, line {line}: {field_name}: {message}")


@dataclass(frozen=True)
class PipelineDefinition:
    """One validated pipeline file."""

    name: str
    path: str  # as shown in errors and DAG docs: relative to the project root when inside it
    settings: Mapping[str, Any]  # every param's value: the param's default, overlaid by the file
    schedule: str | None
    retrain_schedule: str | None
    lines: Mapping[str, int] = field(default_factory=dict)  # param -> line of the file

    def dag_id(self, kind: str) -> str:
        """``<name>.<kind>``: every DAG of a pipeline carries its name."""
        return pipeline_dag_id(self.name, kind)

    @property
    def labels_asset_uri(self) -> str:
        return f"s3://{self.settings['bucket']}/{self.settings['prefix']}/labels/"

    @property
    def run_settings(self) -> dict[str, Any]:
        """The form's params and their defaults: what a person changes per run."""
        return {name: self.settings[name] for name in PER_RUN_PARAMS if name in self.settings}

    @property
    def fixed_settings(self) -> dict[str, Any]:
        """What the file holds for every run (carried by the DAG's ``SETTINGS_MACRO``, not by a param)."""
        return {name: value for name, value in self.settings.items() if name not in PER_RUN_PARAMS}


def effective_params(params: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    """A task's params over its pipeline file's settings: the file's, then the run's params (the
    form's, and any ``--conf`` key, which may override a file setting for one run)."""
    if not isinstance(settings, Mapping):
        raise ConfigError(SETTINGS_MACRO, f"must be an object, got {type(settings).__name__}")
    return {**settings, **params}


def pipelines_dir() -> Path:
    """``$SAGEMAKER_VISION_PIPELINES_DIR``, else ``include/pipelines``."""
    return Path(os.environ.get(PIPELINES_DIR_ENV) or PROJECT_ROOT / "include" / "pipelines")


def display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def pipeline_files(directory: Path) -> list[Path]:
    """The ``*.yaml`` files of ``directory``, sorted (hidden files and other suffixes are not pipelines)."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix == SUFFIX and not p.name.startswith(".") and p.is_file())


def load_pipelines(directory: Path | None = None) -> tuple[list[PipelineDefinition], list[PipelineFileError]]:
    """Every pipeline file of ``directory``: the valid ones, and one error per bad file.

    Nothing a file holds may raise past here: dags/pipelines.py would fail, and Airflow would mark
    every pipeline's DAGs stale. Two files that claim one prefix or one endpoint are both refused:
    neither may write there until one of them changes.
    """
    directory = directory or pipelines_dir()
    loaded: list[PipelineDefinition] = []
    bad: list[PipelineFileError] = []
    for path in pipeline_files(directory):
        try:
            loaded.append(load_pipeline_file(path, root=directory))
        except PipelineFileError as exc:
            bad.append(exc)
        except Exception as exc:  # noqa: BLE001 - an unreadable file, a parser's own limit: this file only
            bad.append(PipelineFileError(display_path(path), 1, "file", f"cannot be read: {type(exc).__name__}: "
                                         f"{exc}"))
    clashes = _clashes(loaded)
    bad.extend(clashes.values())
    good = [definition for definition in loaded if definition.path not in clashes]
    return good, sorted(bad, key=lambda error: error.path)


class PipelineFilesError(Exception):
    """The import error of ``dags/pipeline_errors.py``: every bad pipeline file, one per line."""

    def __init__(self, errors: Iterable[PipelineFileError]):
        self.errors = list(errors)
        lines = "\n".join(f"  {error}" for error in self.errors)
        super().__init__(f"{len(self.errors)} pipeline file(s) refused; their DAGs are not loaded "
                         f"(the other pipelines are):\n{lines}")


def raise_for_bad_files() -> None:
    """Raise :class:`PipelineFilesError` when a pipeline file is bad (``dags/pipeline_errors.py``).

    Here, not in ``sagemaker_vision.dags.factory``: that file is parsed every cycle besides
    ``dags/pipelines.py``, and importing the DAG builders cost it ~400 ms a parse for nothing."""
    _good, bad = load_pipelines()
    if bad:
        raise PipelineFilesError(bad)


def _clashes(definitions: list[PipelineDefinition]) -> dict[str, PipelineFileError]:
    """Two pipelines never write under one S3 prefix (or one inside the other) or to one endpoint: their
    runs would overwrite each other's partitions and manifests, or deploy over each other. Endpoint
    names are compared without case (SageMaker's are case-insensitive) and whatever the region (the
    clients use the connection's region, which a file's empty region leaves open)."""
    clashes: dict[str, PipelineFileError] = {}
    for i, one in enumerate(definitions):
        for other in definitions[i + 1:]:
            for this, that in ((one, other), (other, one)):
                problem = _clash(this, that)
                if problem and this.path not in clashes:
                    clashes[this.path] = PipelineFileError(this.path, this.lines.get(problem[0], 1), *problem)
    return clashes


def _clash(this: PipelineDefinition, that: PipelineDefinition) -> tuple[str, str] | None:
    mine, theirs = this.settings, that.settings
    a, b = f"{mine['prefix'].strip('/')}/", f"{theirs['prefix'].strip('/')}/"
    if mine["bucket"] == theirs["bucket"] and (a.startswith(b) or b.startswith(a)):
        return "prefix", (f"s3://{mine['bucket']}/{a} overlaps {that.path}'s s3://{theirs['bucket']}/{b}; give "
                          "each pipeline a prefix of its own (both files are refused until then)")
    if endpoint_of(this).lower() == endpoint_of(that).lower():
        return "endpoint_name", (f"the endpoint {endpoint_of(this)!r} is also {that.path}'s; give each pipeline "
                                 "an endpoint of its own (both files are refused until then)")
    return None


def endpoint_of(definition: PipelineDefinition) -> str:
    """The pipeline's endpoint: ``endpoint_name``, or the pipeline's name."""
    return definition.settings.get("endpoint_name") or definition.name


def load_pipeline_file(path: Path, root: Path | None = None) -> PipelineDefinition:
    """One pipeline file; a symlink must stay inside ``root`` (its folder by default)."""
    shown = display_path(path)
    real, folder = os.path.realpath(path), os.path.realpath(root or path.parent)
    if os.path.commonpath([real, folder]) != folder:
        raise PipelineFileError(shown, 1, "file", f"links to {real}, outside {folder}; pipeline files stay there")
    with open(real, "rb") as fh:
        raw = fh.read(MAX_FILE_BYTES + 1)  # one read, bounded: what is checked is what is parsed
    if len(raw) > MAX_FILE_BYTES:
        raise PipelineFileError(shown, 1, "file", f"is over {MAX_FILE_BYTES} bytes, the most a pipeline file may have")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise PipelineFileError(shown, line, "file", "is not UTF-8") from None
    return parse_pipeline(text, name=path.stem, path=shown)


def parse_pipeline(text: str, *, name: str, path: str) -> PipelineDefinition:
    """Validate one pipeline file's text; raises :class:`PipelineFileError`."""
    specs = param_specs()
    _check_name(name, specs["pipeline_name"], path)
    root = _compose(text, path)
    values: dict[str, Any] = {}
    lines: dict[str, int] = {}
    section_lines: dict[str, int] = {}
    schedules: dict[str, str | None] = dict(SCHEDULES)
    for key, key_line, node in _mapping_items(root, path, "file"):
        if key in SCHEDULES:
            schedules[key] = _schedule(_construct(node, path), path, node.start_mark.line + 1, key)
        elif key in SECTIONS:
            section_lines[SECTIONS[key]] = key_line
            for param, line, value_node in _mapping_items(node, path, key):
                spec = _section_spec(specs, key, param, path, line)
                values[param] = _checked_value(spec, _construct(value_node, path), path, line)
                lines[param] = line
        else:
            raise PipelineFileError(path, key_line, key, f"is not a section of a pipeline file{_hint(key)}")
    if "prefix" not in values:  # a default prefix would be every such file's: their runs would share it
        raise PipelineFileError(path, section_lines.get("Data", 1), "prefix",
                                "is required in a pipeline file: the key prefix of everything it writes, its own")
    settings = {**{n: s.default for n, s in specs.items()}, **values, "pipeline_name": name}
    # A param the file leaves out is reported at its section's line (or the first line).
    where = {**{n: section_lines.get(s.section, 1) for n, s in specs.items()}, **lines}
    _check_config(settings, lines, where, path)
    return PipelineDefinition(name=name, path=path, settings=settings, schedule=schedules["schedule"],
                              retrain_schedule=schedules["retrain_schedule"], lines=lines)


# ---- the parts ---------------------------------------------------------------------------
def _check_name(name: str, spec: ParamSpec, path: str) -> None:
    try:
        _validate(name, _schema(spec))
    except jsonschema.ValidationError as exc:
        raise PipelineFileError(path, 1, "pipeline_name", f"the file name {name!r} is the pipeline's name, and "
                                f"{exc.message} (letters, digits and inner hyphens, at most {spec.max_length})"
                                ) from None


def _compose(text: str, path: str) -> yaml.Node:
    try:
        for event in yaml.parse(text, Loader=_LOADER):
            if isinstance(event, yaml.AliasEvent):
                line = event.start_mark.line + 1 if event.start_mark else 1
                raise PipelineFileError(path, line, "file", "uses a YAML alias (*name); write the value out")
        root = yaml.compose(text, Loader=_LOADER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise PipelineFileError(path, line, "file", f"is not valid YAML: {exc.problem or exc.context}") from None
    if root is None:
        raise PipelineFileError(path, 1, "file", "is empty: it needs at least the data section")
    return root


def _mapping_items(node: yaml.Node, path: str, where: str) -> Iterable[tuple[str, int, yaml.Node]]:
    line = node.start_mark.line + 1
    if not isinstance(node, yaml.MappingNode):
        raise PipelineFileError(path, line, where, "must be a mapping of keys to values")
    seen: dict[str, int] = {}
    for key_node, value_node in node.value:
        key_line = key_node.start_mark.line + 1
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != "tag:yaml.org,2002:str":
            raise PipelineFileError(path, key_line, where, "keys must be plain names")
        key = key_node.value
        if key in seen:
            raise PipelineFileError(path, key_line, key, f"appears twice (first on line {seen[key]})")
        seen[key] = key_line
        yield key, key_line, value_node


def _construct(node: yaml.Node, path: str) -> Any:
    try:
        return SafeConstructor().construct_object(node, deep=True)
    except RecursionError:
        raise PipelineFileError(path, node.start_mark.line + 1, "file", "nests too deeply") from None


def _schedule(value: Any, path: str, line: int, key: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not croniter.is_valid(value):
        raise PipelineFileError(path, line, key, f"{value!r} is not a cron expression (e.g. \"0 0 * * 0\") or null")
    return value


def _section_spec(specs: Mapping[str, ParamSpec], section: str, param: str, path: str, line: int) -> ParamSpec:
    spec = specs.get(param)
    if param == "pipeline_name":
        raise PipelineFileError(path, line, param, "is the file's name; rename the file instead")
    if spec is None:
        close = difflib.get_close_matches(param, list(specs), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise PipelineFileError(path, line, f"{section}.{param}", f"is not a param of the pipeline{hint}")
    if spec.section != SECTIONS[section]:
        home = next(key for key, title in SECTIONS.items() if title == spec.section)
        raise PipelineFileError(path, line, f"{section}.{param}", f"belongs in the {home} section")
    return spec


def _schema(spec: ParamSpec) -> dict[str, Any]:
    return {key: value for key, value in spec.schema().items() if key != "section"}


def _validate(value: Any, schema: dict[str, Any]) -> None:
    """``jsonschema.validate`` (the same checks, the same best-match error), with each schema checked
    against its meta-schema once per process, not once per value: that check was half of a file's
    parse, and the dag-processor parses every pipeline file twice a cycle (dags/pipelines.py and
    dags/pipeline_errors.py)."""
    key = json.dumps(schema, sort_keys=True, default=repr)
    validator = _VALIDATORS.get(key)
    if validator is None:
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
        validator = _VALIDATORS[key] = cls(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    if error is not None:
        raise error


def _checked_value(spec: ParamSpec, value: Any, path: str, line: int) -> Any:
    """The value against its param's form schema and its config reader: both sides of the one spec."""
    if isinstance(value, float) and not math.isfinite(value):  # YAML's .nan and .inf pass min/max checks
        raise PipelineFileError(path, line, spec.name, f"must be a finite number, got {value}")
    try:
        _validate(value, _schema(spec))
        spec.read({spec.name: value})
    except jsonschema.ValidationError as exc:
        raise PipelineFileError(path, line, spec.name, exc.message) from None
    except ConfigError as exc:
        raise PipelineFileError(path, line, spec.name, str(exc).removeprefix(f"{spec.name}: ")) from None
    return value


def _check_config(settings: Mapping[str, Any], lines: Mapping[str, int], where: Mapping[str, int],
                  path: str) -> None:
    """The whole file through ``PipelineConfig.from_params``: the rules that span params."""
    run = RunInfo(run_id="pipeline-file-check", run_after=datetime(2026, 1, 1, tzinfo=UTC))
    try:
        PipelineConfig.from_params(settings, run=run, region=settings.get("region") or _VALIDATION_REGION)
    except ConfigError as exc:
        name = exc.field
        message = str(exc).removeprefix(f"{name}: ")
        if name not in lines:
            env = ENV_DEFAULTS.get(name)
            source = f" or ${env}" if env else ""
            message += f" (the file does not set it; set it in the file{source})"
        raise PipelineFileError(path, where.get(name, 1), name, message) from None


def _hint(key: str) -> str:
    close = difflib.get_close_matches(key, [*SECTIONS, *SCHEDULES], n=1)
    return f"; did you mean {close[0]!r}?" if close else f"; the sections are {', '.join([*SCHEDULES, *SECTIONS])}"
