"""What users see: the real Airflow UI on the embedded emulator, driven by headless Chromium.

One Airflow per module (``airflow db migrate``, then api-server, dag-processor and scheduler as
separate processes on a throwaway AIRFLOW_HOME); the browser logs in through SimpleAuthManager's
login page, opens the trigger form of a pipeline file's pipeline DAG, checks that every per-run
param (and nothing else) shows its description in its section, and triggers a run, which the REST API
(with a token from ``POST /auth/token``) then shows. Screenshots and the component logs are kept
under ``test-artifacts/ui/``.

Needs Debian's chromium + chromium-driver and Selenium: ``scripts/ui_deps.sh``. Without them the
tests fail, or skip when ``SV_UI_OPTIONAL=1``.
"""

from __future__ import annotations

import re
import shutil
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from sagemaker_vision.core.pipeline_file import parse_pipeline
from sagemaker_vision.pipeline.params import pipeline_form
from tests.ui.browser import quit_chromium, require_browser, start_chromium
from tests.ui.stack import ROOT, AirflowStack

pytestmark = [pytest.mark.ui, pytest.mark.timeout(360)]

PIPELINE = "ui-test-pipeline"  # its own file, prefix and endpoint: nothing it creates is another test's
DAG_ID = f"{PIPELINE}.pipeline"
PIPELINE_FILE = """\
data:
  prefix: ui-test
  image_source: include/sample_data/images
labeling:
  label_backend: import
  import_manifest: include/sample_data/output.manifest
load_test:
  load_test_concurrency: 2
"""
ARTIFACTS = ROOT / "test-artifacts" / "ui"
DEFAULT_SECTION = "Run Parameters"  # where the form puts params without a section
# The runs this Airflow executes use their own names and bucket, so nothing they create in the
# session's emulator (training jobs, endpoints) can be mistaken for another test's.
BROKEN_FILE = "data:\n  prefix: broken\ntraining:\n  epochs: 5000\n"
UI_ENV = {"SAGEMAKER_VISION_BUCKET": "sagemaker-vision-ui-test"}
UI_WAIT_S = 30


# --------------------------------------------------------------------------------------------
# Fixtures: one Airflow and one browser for the module
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def _browser_installed():
    """First of all, so a missing browser skips or fails before anything starts."""
    require_browser()


@pytest.fixture(scope="module")
def airflow_stack(emulator, tmp_path_factory):
    """api-server, dag-processor and scheduler, with the pipeline DAG parsed into the DB."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    s3 = _s3(emulator.endpoint_url)
    try:
        s3.create_bucket(Bucket=UI_ENV["SAGEMAKER_VISION_BUCKET"])
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    pipelines = tmp_path_factory.mktemp("pipelines")
    (pipelines / f"{PIPELINE}.yaml").write_text(PIPELINE_FILE)
    (pipelines / "broken-detector.yaml").write_text(BROKEN_FILE)  # must break only itself
    stack = AirflowStack(home=tmp_path_factory.mktemp("airflow-home"), emulator_url=emulator.endpoint_url,
                         extra_env={**UI_ENV, "SAGEMAKER_VISION_PIPELINES_DIR": str(pipelines)})
    try:
        stack.migrate()
        stack.start("api-server", "dag-processor", "scheduler")
        stack.wait_until("the api-server", lambda: stack.request("GET", "/api/v2/version"), timeout=150)
        token = stack.token()
        stack.wait_until(f"the dag-processor to store {DAG_ID}",
                         lambda: stack.request("GET", f"/api/v2/dags/{DAG_ID}", token=token), timeout=120)
        yield stack
    finally:
        stack.stop()
        for log in stack.logs.glob("*.log"):
            shutil.copy(log, ARTIFACTS / log.name)


@pytest.fixture(scope="module")
def api_token(airflow_stack) -> str:
    return airflow_stack.token()


@pytest.fixture(scope="module")
def driver(airflow_stack, tmp_path_factory):
    profile = tmp_path_factory.mktemp("chromium") / "profile"  # a new, empty --user-data-dir
    browser = start_chromium(profile, width=1400, height=1100)
    browser.implicitly_wait(0)
    try:
        yield browser
    finally:
        quit_chromium(browser)


def _s3(endpoint_url: str):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint_url, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


# --------------------------------------------------------------------------------------------
# Page helpers
# --------------------------------------------------------------------------------------------


def _wait(driver, condition, what: str, timeout: float = UI_WAIT_S):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout).until(condition)
    except TimeoutException:
        _screenshot(driver, "failure")
        raise AssertionError(f"timed out after {timeout} s waiting for {what} at {driver.current_url}; "
                             f"screenshot in {ARTIFACTS}") from None


def _screenshot(driver, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def _by_css(css: str):
    from selenium.webdriver.common.by import By

    return By.CSS_SELECTOR, css


def login(driver, stack: AirflowStack, next_path: str) -> None:
    """Sign in on SimpleAuthManager's login page, as a person would."""
    from selenium.webdriver.support import expected_conditions as ec

    driver.get(f"{stack.base_url}/dags/{DAG_ID}")
    _wait(driver, lambda d: "/auth/login" in d.current_url, "the redirect to the login page")
    _wait(driver, ec.visibility_of_element_located(_by_css("input[name=username]")), "the login form").send_keys(
        "admin")
    driver.find_element(*_by_css("input[name=password]")).send_keys(stack.admin_password())
    driver.find_element(*_by_css("button[type=submit]")).click()
    _wait(driver, lambda d: d.current_url.rstrip("/").endswith(next_path), f"the redirect to {next_path}")


def open_trigger_form(driver):
    """Click the DAG page's Trigger button; return the form's dialog."""
    from selenium.webdriver.support import expected_conditions as ec

    _wait(driver, ec.element_to_be_clickable(_by_css("[data-testid=trigger-dag-button]")), "the Trigger button").click()

    def dialog(d):
        shown = [e for e in d.find_elements(*_by_css("[role=dialog]")) if e.is_displayed() and "Single Run" in e.text]
        return shown[0] if shown else None

    return _wait(driver, dialog, "the trigger form")


def section_names(dialog) -> list[str]:
    triggers = dialog.find_elements(*_by_css("button[data-part=item-trigger]"))
    return [t.get_attribute("id").rsplit(":trigger:", 1)[-1] for t in triggers]


def open_section(driver, dialog, section: str):
    """Expand one accordion section of the form (the form shows one at a time); return its content."""
    trigger = dialog.find_element(*_by_css(f"button[data-part=item-trigger][id$=':trigger:{section}']"))
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", trigger)
    if trigger.get_attribute("aria-expanded") != "true":
        trigger.click()
    content = dialog.find_element(*_by_css(f"[data-part=item-content][id$=':content:{section}']"))
    _wait(driver, lambda d: content.is_displayed(), f"section {section!r} to open")
    return content


def field_of(content, param: str):
    """(value input, label, helper text) of one param's field, or None when the section lacks it.

    Every kind of field (text, number, select) carries an input named ``element_<param>`` with its value.
    """
    inputs = content.find_elements(*_by_css(f"[name='element_{param}']"))
    if not inputs:
        return None
    root = inputs[0].find_element("xpath", "ancestor::*[@data-scope='field' and @data-part='root'][1]")
    helper = root.find_elements(*_by_css("[data-part=helper-text]"))
    label = root.find_element(*_by_css("label[data-part=label]"))
    return inputs[0], label, (helper[0] if helper else None)


def _gone(element) -> bool:
    from selenium.common.exceptions import StaleElementReferenceException

    try:
        return not element.is_displayed()
    except StaleElementReferenceException:  # removed from the page
        return True


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text or "").strip()


def form_params() -> dict[str, Any]:
    """The DAG's params, from the same builder the DAG uses, for the same pipeline file."""
    import os

    os.environ.update(UI_ENV)  # the file's bucket default, as the components read it
    return pipeline_form(parse_pipeline(PIPELINE_FILE, name=PIPELINE, path=f"{PIPELINE}.yaml"))


def params_by_section() -> dict[str, dict[str, Any]]:
    """The form's params grouped as the form groups them (the file's settings are not params)."""
    grouped: dict[str, dict[str, Any]] = defaultdict(dict)
    for name, param in form_params().items():
        grouped[param.schema.get("section") or DEFAULT_SECTION][name] = param
    return grouped


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------


def test_a_user_checks_every_param_and_triggers_a_run(airflow_stack, api_token, driver):
    login(driver, airflow_stack, f"/dags/{DAG_ID}")
    dialog = open_trigger_form(driver)
    expected = params_by_section()
    assert set(expected) <= set(section_names(dialog)), (
        f"the form has sections {section_names(dialog)}, the DAG's params {sorted(expected)}")

    # Every param: its field, in its section, showing its description.
    missing, wrong, required_empty = [], [], []
    for section, params in expected.items():
        content = open_section(driver, dialog, section)
        driver.set_window_size(1400, 1100 + 120 * len(params))  # the whole section in one screenshot
        for name, param in params.items():
            field = field_of(content, name)
            if field is None:
                missing.append(f"{section}/{name}")
                continue
            element, label, helper = field
            shown = _norm(helper.text) if helper is not None and helper.is_displayed() else ""
            if shown != _norm(param.description):
                wrong.append(f"{name}: shows {shown!r}, the DAG says {param.description!r}")
            if label.get_attribute("data-required") is not None and element.get_attribute("value") == "":
                required_empty.append(name)
        _screenshot(driver, f"trigger_form_{re.sub(r'[^a-z0-9]+', '_', section.lower())}")
    driver.set_window_size(1400, 1100)
    assert not missing, f"params missing from the trigger form: {missing}"
    assert not wrong, "descriptions not shown as the DAG defines them:\n" + "\n".join(wrong)
    # Only what matters: no section and no field of the file's settings.
    airflows_own = {"advancedOptions"}  # Airflow's run id, logical date and conf, on every form
    assert set(section_names(dialog)) - airflows_own == set(expected), section_names(dialog)
    for name in ("bucket", "image_source", "label_backend", "endpoint_type", "slo_p95_ms"):
        assert not dialog.find_elements(*_by_css(f"[name='element_{name}']")), f"{name} shows on the form"

    # Defaults must be triggerable: the form refuses a required (non-nullable) param left empty.
    trigger = [b for b in dialog.find_elements(*_by_css("button")) if _norm(b.text) == "Trigger"][-1]
    assert not required_empty and trigger.is_enabled(), (
        f"the Trigger button is disabled with the defaults: the form requires {required_empty}, which "
        "default to empty; declare optional params with type=['null', 'string'] so an empty value is allowed"
    )

    # Edit one param, as a user would, and trigger.
    from selenium.webdriver.common.keys import Keys

    epochs = 7 + uuid.uuid4().int % 50  # a value of this test's own, to find its run by
    content = open_section(driver, dialog, form_params()["epochs"].schema.get("section") or DEFAULT_SECTION)
    box = content.find_element(*_by_css("[name='element_epochs']"))
    box.send_keys(Keys.CONTROL + "a")  # replace the default
    box.send_keys(str(epochs))
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", trigger)
    trigger.click()
    _wait(driver, lambda d: _gone(dialog), "the trigger form to close")

    # The REST API, as any client would see it: the run exists, carries the edit, came from the UI.
    def our_run():
        runs = airflow_stack.request("GET", f"/api/v2/dags/{DAG_ID}/dagRuns?run_type=manual", token=api_token)
        return next((r for r in runs["dag_runs"] if (r.get("conf") or {}).get("epochs") == epochs), None)

    run = airflow_stack.wait_until("the triggered run in the REST API", our_run, timeout=30)
    assert run["run_type"] == "manual" and run["triggered_by"] == "ui", run
    # The run's conf holds the form's fields only: nothing of the file, so a file edit never turns
    # a stored conf value into a validation error for the run's remaining tasks.
    assert set(run["conf"]) <= set(form_params()), run["conf"]
    assert run["state"] in {"queued", "running", "success"}, run
    dag = airflow_stack.request("GET", f"/api/v2/dags/{DAG_ID}", token=api_token)
    assert dag["is_paused"] is False, "the form's 'Unpause on trigger' (on by default) did not unpause the DAG"

    # The scheduler executes the DAG's tasks (max_active_runs=1: the scheduled run of the last
    # interval, created on unpause, may go first; ours waits queued behind it).
    def a_task_started():
        for dag_run in airflow_stack.request("GET", f"/api/v2/dags/{DAG_ID}/dagRuns", token=api_token)["dag_runs"]:
            tis = airflow_stack.request(
                "GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{dag_run['dag_run_id']}/taskInstances", token=api_token)
            if any(ti["state"] in {"running", "success"} for ti in tis["task_instances"]):
                return True
        return False

    airflow_stack.wait_until("the scheduler to run a task of the DAG", a_task_started, timeout=90, interval=2)
    driver.get(f"{airflow_stack.base_url}/dags/{DAG_ID}/runs/{run['dag_run_id']}")
    _wait(driver, lambda d: run["dag_run_id"] in d.page_source, "the run's page")
    time.sleep(2)  # let the grid paint before the picture
    _screenshot(driver, "triggered_run")


def test_the_plugin_loads_and_its_links_resolve(airflow_stack, api_token):
    """The api-server loaded the sagemaker_vision plugin cleanly and serves the links the tasks stored."""
    errors = airflow_stack.request("GET", "/api/v2/plugins/importErrors", token=api_token)
    assert errors["total_entries"] == 0, errors
    log = airflow_stack.log_text("api-server")
    assert "Failed to import plugin" not in log, "the api-server log shows a plugin import error"
    plugins = {p["name"]: p for p in airflow_stack.request("GET", "/api/v2/plugins", token=api_token)["plugins"]}
    assert "sagemaker_vision" in plugins, (
        f"the api-server loaded plugins {sorted(plugins)}; plugins/ must register "
        "sagemaker_vision.plugin.SageMakerVisionPlugin")
    assert len(plugins["sagemaker_vision"]["operator_extra_links"]) == 4, plugins["sagemaker_vision"]

    # The operators list their own links; the api-server serves, for each, the URL the worker's task
    # runner stored at the end of the try under the link's xcom_key (built from what the operator
    # persisted). A run whose train task has that XCom (set here through the REST API, as the worker
    # would) links to that job; the deploy task, not run, links nowhere yet.
    # (GET /dags/{id}/tasks/{id} cannot show this: its extra_links is always empty in Airflow 3.3.)
    from sagemaker_vision.links.sagemaker import SageMakerTrainingJobLink, SageMakerTrainingLogsLink, link_fields
    from sagemaker_vision.operators.deploy import DeployEndpointOperator
    from sagemaker_vision.operators.training import ObjectDetectionTrainingOperator

    tasks = airflow_stack.request("GET", f"/api/v2/dags/{DAG_ID}/tasks", token=api_token)["tasks"]

    def task_of(operator: type) -> str:
        return next(t["task_id"] for t in tasks
                    if (t["class_ref"]["module_path"], t["class_ref"]["class_name"])
                    == (operator.__module__, operator.__name__))

    train, deploy = task_of(ObjectDetectionTrainingOperator), task_of(DeployEndpointOperator)
    run_id = f"links_{uuid.uuid4().hex[:8]}"
    airflow_stack.request("POST", f"/api/v2/dags/{DAG_ID}/dagRuns", token=api_token,
                          body={"dag_run_id": run_id, "logical_date": None, "conf": {}})
    job = f"shapes-detector-{uuid.uuid4().hex[:8]}"
    ti_path = f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances"
    for link in (SageMakerTrainingJobLink(), SageMakerTrainingLogsLink()):
        airflow_stack.request("POST", f"{ti_path}/{train}/xcomEntries", token=api_token,
                              body={"key": link.xcom_key, "value": link.format_link(**link_fields("us-east-1",
                                                                                               job_name=job))})
    links = airflow_stack.request("GET", f"{ti_path}/{train}/links", token=api_token)["extra_links"]
    assert links.get("SageMaker Training Job") == (
        f"https://console.aws.amazon.com/sagemaker/home?region=us-east-1#/jobs/{job}"), links
    assert (links.get("Training Logs (CloudWatch)") or "").endswith(
        f"TrainingJobs$3FlogStreamNameFilter$3D{job}"), links
    deploy_links = airflow_stack.request("GET", f"{ti_path}/{deploy}/links", token=api_token)["extra_links"]
    assert "SageMaker Endpoint" in deploy_links and deploy_links["SageMaker Endpoint"] is None, (
        deploy_links)  # the deploy task has not run: no endpoint to link to yet
    assert "Failed to push an xcom for task operator extra link" not in airflow_stack.log_text("api-server")


def test_a_broken_pipeline_file_is_one_import_error_and_the_good_pipeline_stays_active(airflow_stack, api_token):
    """Through the real dag-processor: Airflow marks every DAG of a file with an import error stale, so
    the good pipeline's DAGs must come from a file without one (dags/pipelines.py)."""
    errors = airflow_stack.wait_until(
        "the dag-processor to record the broken file",
        lambda: airflow_stack.request("GET", "/api/v2/importErrors", token=api_token)["import_errors"] or None,
        timeout=60)
    assert [e["filename"] for e in errors] == ["pipeline_errors.py"], errors
    assert "broken-detector.yaml, line 4: epochs: 5000 is greater than the maximum of 1000" in errors[0]["stack_trace"]
    dags = airflow_stack.request("GET", "/api/v2/dags?limit=100", token=api_token)["dags"]
    ours = {d["dag_id"]: d for d in dags if d["dag_id"].startswith(f"{PIPELINE}.")}
    assert f"{PIPELINE}.pipeline" in ours and not any(d["has_import_errors"] for d in ours.values()), ours
    assert not any(d["dag_id"].startswith("broken-detector.") for d in dags)
