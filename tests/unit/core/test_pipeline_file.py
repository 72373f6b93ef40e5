"""Pipeline files: validated by the params' own specs, every refusal naming the file, line and field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from sagemaker_vision.core.params import PER_RUN_PARAMS, param_specs
from sagemaker_vision.core.pipeline_file import (
    MAX_FILE_BYTES,
    PipelineFileError,
    effective_params,
    load_pipeline_file,
    load_pipelines,
    parse_pipeline,
    pipeline_files,
    pipelines_dir,
)

GOOD = """\
schedule: "0 0 * * 0"
data:
  prefix: defects
  image_source: include/sample_data/images
  budget_usd: 20
labeling:
  label_backend: import
  import_manifest: include/sample_data/output.manifest
training:
  epochs: 12
deployment:
  endpoint_type: serverless
load_test:
  slo_p95_ms: 900
"""


def parse(text: str, name: str = "defects"):
    return parse_pipeline(textwrap.dedent(text), name=name, path=f"include/pipelines/{name}.yaml")


def refusal(text: str, name: str = "defects") -> PipelineFileError:
    with pytest.raises(PipelineFileError) as caught:
        parse(text, name)
    return caught.value


def test_a_good_file_overlays_the_params_defaults():
    definition = parse(GOOD)
    assert definition.name == "defects" and definition.dag_id("pipeline") == "defects.pipeline"
    assert definition.settings["pipeline_name"] == "defects"
    assert definition.settings["epochs"] == 12 and definition.settings["slo_p95_ms"] == 900
    assert definition.settings["mini_batch_size"] == param_specs()["mini_batch_size"].default
    assert definition.schedule == "0 0 * * 0" and definition.retrain_schedule == "0 6 * * 1"
    assert definition.lines["epochs"] == 10
    assert definition.labels_asset_uri.endswith("/defects/labels/")


def test_the_form_holds_the_per_run_params_and_the_file_the_rest():
    definition = parse(GOOD)
    assert set(definition.run_settings) == {name for name in PER_RUN_PARAMS if name in param_specs()}
    assert not set(definition.run_settings) & set(definition.fixed_settings)
    assert definition.run_settings["budget_usd"] == 20 and definition.fixed_settings["prefix"] == "defects"


def test_a_runs_params_go_over_the_file_settings():
    params = {"epochs": 5, "bucket": "other"}
    assert effective_params(params, {"prefix": "defects", "bucket": "b"}) == {
        "epochs": 5, "prefix": "defects", "bucket": "other"}
    with pytest.raises(ValueError, match="pipeline_settings"):
        effective_params(params, ["not", "a", "mapping"])  # type: ignore[arg-type]


@pytest.mark.parametrize(("text", "line", "field", "says"), [
    ("data:\n  prefix: a\ntraining:\n  epochs: 0\n", 4, "epochs", "minimum of 1"),
    ("data:\n  prefix: a\ndeployment:\n  serverless_memory_mb: 3000\n", 4, "serverless_memory_mb", "3000"),
    ("data:\n  prefix: a\ntraining:\n  epochs: 1.5\n", 4, "epochs", "integer"),
    ("data:\n  prefix: a\n  bucket: Not_A_Bucket\n", 3, "bucket", "does not match"),
    ("data:\n  prefix: a\nlabeling:\n  label_backend: mturk\n", 4, "label_backend", "mturk"),
    ("data:\n  prefix: a\ntraining:\n  epocs: 3\n", 4, "training.epocs", "did you mean 'epochs'"),
    ("data:\n  prefix: a\n  epochs: 3\n", 3, "data.epochs", "belongs in the training section"),
    ("data:\n  prefix: a\ntrainig:\n  epochs: 3\n", 3, "trainig", "did you mean 'training'"),
    ("data:\n  prefix: a\n  prefix: b\n", 3, "prefix", "twice (first on line 2)"),
    ("data:\n  prefix: a\n  pipeline_name: other\n", 3, "pipeline_name", "rename the file"),
    ("schedule: every monday\ndata:\n  prefix: a\n", 1, "schedule", "not a cron expression"),
    ("data:\n  prefix: a\ntraining: [1, 2]\n", 3, "training", "mapping"),
    ("data:\n  prefix: a\n    image_source: x\n", 3, "file", "not valid YAML"),
    ("base: &b {prefix: a}\ndata: *b\n", 2, "file", "alias"),
    # Rules that span params: PipelineConfig.from_params, reported at the param's line.
    ("data:\n  prefix: a\ndeployment:\n  endpoint_type: serverless\n  deployment_policy: canary\n", 5,
     "deployment_policy", "serverless"),
    ("data:\n  prefix: a\nlabeling:\n  label_backend: ground_truth\n  label_classes: [a]\n", 3,
     "gt_workteam_arn", "does not set it"),
    ("data:\n  prefix: a\n  image_source: /etc\n", 3, "image_source", "allowed roots"),
])
def test_a_bad_file_names_its_line_and_field(text, line, field, says):
    error = refusal(text)
    assert (error.line, error.field) == (line, field), str(error)
    assert says in str(error)
    assert str(error).startswith(f"include/pipelines/defects.yaml, line {line}: {field}: ")


def test_the_file_name_is_the_pipeline_name_and_must_be_a_valid_one():
    assert refusal(GOOD, name="Bad_Name").field == "pipeline_name"
    assert refusal(GOOD, name="x" * 60).field == "pipeline_name"


def test_an_unset_environment_default_is_named(monkeypatch):
    monkeypatch.delenv("SAGEMAKER_VISION_ROLE_ARN", raising=False)
    error = refusal(GOOD)
    assert error.field == "role_arn" and error.line == 2 and "$SAGEMAKER_VISION_ROLE_ARN" in str(error)


def test_an_empty_file_and_an_oversized_one_are_refused(tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing\n")
    with pytest.raises(PipelineFileError, match="is empty"):
        load_pipeline_file(empty)
    big = tmp_path / "big.yaml"
    big.write_text(GOOD + "#" * MAX_FILE_BYTES)
    with pytest.raises(PipelineFileError, match=f"is over {MAX_FILE_BYTES} bytes"):
        load_pipeline_file(big)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"data:\n  prefix: caf\xe9\n")
    with pytest.raises(PipelineFileError, match="line 2: file: is not UTF-8"):
        load_pipeline_file(latin)


def test_a_directory_gives_one_error_per_bad_file_and_keeps_the_good(tmp_path):
    (tmp_path / "a.yaml").write_text(GOOD.replace("defects", "a-prefix"))
    (tmp_path / "b.yaml").write_text(GOOD.replace("defects", "b-prefix"))
    (tmp_path / "c.yaml").write_text(GOOD.replace("epochs: 12", "epochs: -1"))
    (tmp_path / "notes.txt").write_text("not a pipeline")
    (tmp_path / ".hidden.yaml").write_text("not: [a pipeline")
    good, bad = load_pipelines(tmp_path)
    assert [d.name for d in good] == ["a", "b"]
    assert [(Path(e.path).name, e.line, e.field) for e in bad] == [("c.yaml", 10, "epochs")]
    assert [p.name for p in pipeline_files(tmp_path)] == ["a.yaml", "b.yaml", "c.yaml"]


def test_two_pipelines_that_share_a_prefix_or_an_endpoint_are_both_refused(tmp_path):
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text(GOOD.replace("prefix: defects", "prefix: /defects/"))
    (tmp_path / "c.yaml").write_text(GOOD.replace("prefix: defects", "prefix: cams/north"))
    (tmp_path / "d.yaml").write_text(GOOD.replace("prefix: defects", "prefix: cams"))
    (tmp_path / "e.yaml").write_text(GOOD.replace("prefix: defects", "prefix: solo").replace(
        "endpoint_type: serverless", "endpoint_type: serverless\n  endpoint_name: F"))
    (tmp_path / "f.yaml").write_text(GOOD.replace("prefix: defects", "prefix: other"))
    (tmp_path / "g.yaml").write_text(GOOD.replace("prefix: defects", "prefix: mine"))
    good, bad = load_pipelines(tmp_path)
    assert [d.name for d in good] == ["g"]
    assert [(Path(e.path).name, e.field) for e in bad] == [
        ("a.yaml", "prefix"), ("b.yaml", "prefix"),  # the same prefix, however it is slashed
        ("c.yaml", "prefix"), ("d.yaml", "prefix"),  # one prefix inside the other
        ("e.yaml", "endpoint_name"), ("f.yaml", "endpoint_name")]  # endpoint names ignore case
    assert "b.yaml" in str(bad[0]) and "both files are refused" in str(bad[0])


def test_a_file_must_name_its_own_prefix():
    error = refusal(GOOD.replace("  prefix: defects\n", ""))
    assert (error.field, error.line) == ("prefix", 2) and "required" in str(error)


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_non_finite_numbers_are_refused(value):
    error = refusal(GOOD.replace("budget_usd: 20", f"budget_usd: {value}"))
    assert (error.field, error.line) == ("budget_usd", 5) and "finite" in str(error)


def test_a_file_nesting_too_deeply_is_refused_not_raised():
    error = refusal(GOOD.replace("epochs: 12", "epochs: " + "[" * 2000 + "]" * 2000))
    assert error.field == "file"


def test_nothing_a_file_holds_raises_past_the_loader(tmp_path, monkeypatch):
    """One file's unexpected failure (here an unreadable file) is that file's error, never the loader's."""
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text(GOOD.replace("prefix: defects", "prefix: b"))
    real_open = open

    def flaky_open(file, *args, **kwargs):
        if str(file).endswith("b.yaml"):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", flaky_open)
    good, bad = load_pipelines(tmp_path)
    assert [d.name for d in good] == ["a"]
    assert [(Path(e.path).name, e.field) for e in bad] == [("b.yaml", "file")] and "Permission denied" in str(bad[0])


def test_a_symlink_out_of_the_folder_is_refused(tmp_path):
    outside = tmp_path / "elsewhere.yaml"
    outside.write_text(GOOD)
    folder = tmp_path / "pipelines"
    folder.mkdir()
    (folder / "inside.yaml").write_text(GOOD.replace("prefix: defects", "prefix: inside"))
    (folder / "escape.yaml").symlink_to(outside)
    good, bad = load_pipelines(folder)
    assert [d.name for d in good] == ["inside"]
    assert [(Path(e.path).name, e.field) for e in bad] == [("escape.yaml", "file")] and "outside" in str(bad[0])


def test_the_shipped_pipeline_files_are_valid_and_independent():
    good, bad = load_pipelines(pipelines_dir())
    assert bad == []
    assert {"shapes-detector", "shapes-realtime"} <= {d.name for d in good}
