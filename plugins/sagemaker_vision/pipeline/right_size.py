"""The task bodies of ``<pipeline>.right_size``: check -> estimate -> per size (create -> deploy -> load test)
-> recommend, and the teardown.

The decisions are :mod:`sagemaker_vision.core.right_size`'s, the AWS calls
:mod:`sagemaker_vision.hooks.right_size`'s; the DAG (``sagemaker_vision.dags.right_size``) wires them,
with the package's deploy operator (the deferrable wait) and fanned-out load test in between. A bad
param or a pipeline or endpoint that is not serverless fails ``check`` naming the field, before any
paid call; an estimate over ``budget_usd`` fails ``estimate``, before anything is created.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, AirflowSkipException

from sagemaker_vision.core import endpoint_waits as waits
from sagemaker_vision.core import right_size as rs
from sagemaker_vision.core.params import default_poll_seconds
from sagemaker_vision.core.prices import active_table, priced_region, to_decimal
from sagemaker_vision.core.validate import ConfigError, parse_s3_uri
from sagemaker_vision.hooks import base as aws
from sagemaker_vision.hooks import right_size as hook

log = logging.getLogger(__name__)


def check_task(params: Mapping[str, Any], *, run_id: str, pipeline_name: str, endpoint_type: str,
               max_concurrency: int, bucket: str, prefix: str) -> dict[str, Any]:
    """Validate the form, refuse what is not serverless, resolve the model, name the candidates. No paid call."""
    try:
        if endpoint_type != "serverless":
            raise ConfigError("endpoint_type", f"pipeline {pipeline_name} deploys {endpoint_type} endpoints (its "
                                               "file's endpoint_type); right-sizing compares serverless memory sizes")
        sizes = rs.validate_memory_sizes(params.get("memory_sizes_mb"))
        load = rs.LoadSettings.from_params(params, max_concurrency=max_concurrency)
        budget = params.get("budget_usd")
        if isinstance(budget, bool) or not isinstance(budget, int | float) or budget < 0:
            raise ConfigError("budget_usd", f"must be a number of USD, at least 0, got {budget!r}")
        payloads = str(params.get("payload_prefix") or "")
        if payloads and not payloads.startswith("s3://"):
            raise ConfigError("payload_prefix", f"must be an s3:// prefix or manifest (the load workers may run on "
                                                f"any machine), got {payloads!r}")
        if payloads:
            parse_s3_uri(payloads, "payload_prefix")
        for memory in sizes:  # every tag value fits SageMaker's TagValue rule, or the run fails here, not at create
            rs.candidate_tags(pipeline_name, run_id, memory)
        sagemaker = aws.client("sagemaker")
        endpoint_name = str(params["endpoint_name"])
        current = hook.serving(sagemaker, endpoint_name)
        model = str(params.get("model_name") or "") or (current or {}).get("model_name")
        if not model:
            raise ConfigError("model_name", f"is empty and endpoint {endpoint_name} does not exist to take the model "
                                            "it serves: name the model to test")
        described = hook.require_model(sagemaker, model)
        if not payloads:  # the pipeline's own load test sends its run's validation manifest: so does this
            payloads = _validation_manifest(described, model, bucket=bucket, prefix=prefix,
                                            pipeline_name=pipeline_name)
        reports = rs.reports_prefix(bucket, prefix, run_id)
        candidates = rs.plan_candidates(pipeline_name, run_id, sizes, production_endpoint=endpoint_name,
                                        reports=reports)
    except ConfigError as exc:  # the same on every try
        raise AirflowFailException(str(exc)) from None
    log.info("right-sizing model %s (endpoint %s serves %s MB now) at %s MB, C=%d, %d requests or %g s each, "
             "images from %s; reports under %s", model, endpoint_name, (current or {}).get("memory_mb", "-"),
             ", ".join(map(str, sizes)), load.concurrency, load.requests, load.seconds, payloads, reports)
    return {"pipeline_name": pipeline_name, "endpoint_name": endpoint_name, "model_name": model,
            "current_memory_mb": (current or {}).get("memory_mb"), "sizes": list(sizes),
            "max_concurrency": max_concurrency, "load": load.to_dict(), "reports": reports,
            "candidates": [c.to_dict() for c in candidates], "payload_prefix": payloads}


def _validation_manifest(model: Mapping[str, Any], model_name: str, *, bucket: str, prefix: str,
                         pipeline_name: str) -> str:
    """The validation manifest of the pipeline run that trained ``model``: images training kept (never one
    bad_image_policy=skip left out) and checked against the payload limit; ConfigError naming payload_prefix."""
    url = hook.model_data_url(model)
    uri = rs.validation_manifest_of(url, bucket=bucket, prefix=prefix, pipeline_name=pipeline_name)
    if uri is None:
        raise ConfigError("payload_prefix", f"is empty and model {model_name}'s artifacts ({url or 'none'}) are not "
                                            f"a {pipeline_name} pipeline run's, so there is no validation manifest to "
                                            "send: name the images (an s3:// prefix or manifest)")
    if not hook.exists(aws.client("s3"), uri):
        raise ConfigError("payload_prefix", f"is empty and {uri}, the validation manifest of the run that trained "
                                            f"model {model_name}, does not exist: name the images to send")
    return uri


def estimate_task(checked: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """Price every size's test (an upper bound); fail, before anything is created, above ``budget_usd``."""
    load = rs.LoadSettings(**checked["load"])
    table = active_table(None)
    region, note = priced_region(aws.hook("sagemaker").region_name, table)
    estimate = rs.estimate_tests(checked["sizes"], load, prices=table, region=region)
    log.info("What the right-size tests may cost at most%s:\n%s", note, estimate.format_table())
    if estimate.exceeds(params["budget_usd"]):
        raise AirflowFailException(
            f"budget_usd: the right-size tests may cost up to ${estimate.total} (see the table in the log) and "
            f"budget_usd is ${to_decimal(params['budget_usd'], 'budget_usd')}; test fewer sizes, fewer requests or "
            "fewer seconds, or raise budget_usd. Nothing was created.")
    return estimate.to_dict()


def _candidate(checked: Mapping[str, Any], memory_mb: int) -> dict[str, Any]:
    return next(c for c in checked["candidates"] if c["memory_mb"] == memory_mb)


def create_task(checked: Mapping[str, Any] | None, memory_mb: int, run_id: str) -> dict[str, Any]:
    """The size's endpoint config (the deploy task then creates the endpoint); skipped when the size is not asked."""
    if not checked:
        raise AirflowSkipException("check did not pass: nothing is created")
    if memory_mb not in checked["sizes"]:
        raise AirflowSkipException(f"{memory_mb} MB is not in memory_sizes_mb {checked['sizes']}")
    candidate = _candidate(checked, memory_mb)
    tags = rs.candidate_tags(checked["pipeline_name"], run_id, memory_mb)
    # MaxConcurrency is what the test sends, not the file's: every candidate is up at once and their
    # MaxConcurrency adds up against the account's serverless concurrency quota.
    concurrency = int(checked["load"]["concurrency"])
    request = rs.endpoint_config_request(rs.Candidate(memory_mb, candidate["endpoint_name"],
                                                      candidate["report_prefix"]),
                                         model_name=checked["model_name"], max_concurrency=concurrency, tags=tags)
    created = hook.ensure_candidate_config(aws.client("sagemaker"), request, run_id)
    log.info("%s endpoint config %s: %s at %d MB, MaxConcurrency %d", "created" if created else "reusing",
             candidate["endpoint_name"], checked["model_name"], memory_mb, concurrency)
    return {"endpoint_name": candidate["endpoint_name"], "endpoint_config_name": candidate["endpoint_config_name"],
            "tags": tags, "report_prefix": candidate["report_prefix"]}


def endpoint_ready_task(checked: Mapping[str, Any], memory_mb: int, run_id: str, *,
                        poll_s: float | None = None) -> str:
    """Before a size's load test (its plan's pre_execute): the size's config and endpoint exist and are
    InService, created again when gone. A finished run's teardown deleted them, and clearing the size's test
    clears neither ``create`` nor ``deploy`` (they cannot be setups of the teardown: a setup that is skipped,
    a size not asked for, or fails, an endpoint that cannot start, would skip or fail every later size's turn
    under Airflow's setup rule, where ``previous_sizes_done`` must run whatever they did)."""
    created = create_task(checked, memory_mb, run_id)
    concurrency = int(checked["load"]["concurrency"])
    budget = waits.endpoint_wait_budget("create", [{"ServerlessConfig": {"MemorySizeInMB": memory_mb,
                                                                          "MaxConcurrency": concurrency}}])
    outcome = hook.ensure_candidate_endpoint(aws.client("sagemaker"), created["endpoint_name"], created["tags"],
                                             run_id, budget_s=budget,
                                             poll_s=default_poll_seconds() if poll_s is None else poll_s)
    log.info("endpoint %s: %s", created["endpoint_name"], outcome)
    return outcome


def reports_of_this_try(checked: Mapping[str, Any], reduce_task_ids: Mapping[int, str], *,
                        states: Mapping[str, Any], pull: Callable[[str], Any]) -> dict[int, Any]:
    """Each size's load-test report as its reduce task returned it in this try of the run (None: no report).

    Never report.json at the size's fixed key, nor the XCom alone: Airflow clears a task's XComs only when
    the task starts, so after a clear a size whose test does not run this time (its deploy failed, so the
    test is upstream_failed) would still show the earlier try's report. A report counts only when the
    reduce task's state now is success, so its XCom is this try's.
    """
    out: dict[int, Any] = {}
    for memory in checked["sizes"]:
        task_id = reduce_task_ids[memory]
        out[memory] = pull(task_id) if states.get(task_id) == "success" else None
    return out


def recommend_task(checked: Mapping[str, Any], reports: Mapping[int, Any]) -> dict[str, Any]:
    """Pick from every size's report of this try (:func:`reports_of_this_try`), write recommendation.json;
    fail (after writing it) without a pick."""
    s3 = aws.client("s3")
    results, missing = [], []
    for candidate in checked["candidates"]:
        report = reports.get(candidate["memory_mb"])
        if not report:
            missing.append(candidate["memory_mb"])
            continue
        uri = str(report.get("report_uri") or f"{candidate['report_prefix']}report.json")
        try:
            if report.get("endpoint_name") != candidate["endpoint_name"]:
                raise ValueError(f"it tested {report.get('endpoint_name')!r}, not {candidate['endpoint_name']!r}")
            results.append(rs.CandidateResult.from_report(candidate["memory_mb"], report, uri))
        except (KeyError, TypeError, ValueError) as exc:
            raise AirflowFailException(f"{uri} is not a right-size load-test report: {exc}") from None
    load = checked["load"]
    picked = rs.pick_cheapest(results, slo_p95_ms=load["slo_p95_ms"], max_error_rate=load["max_error_rate"],
                              missing=missing, current_memory_mb=checked.get("current_memory_mb"))
    document = {"endpoint_name": checked["endpoint_name"], "model_name": checked["model_name"], "load": load,
                **picked.to_dict()}
    uri = hook.put_json(s3, f"{checked['reports']}recommendation.json", document)
    log.info("right-size of %s (model %s), SLO p95 <= %g ms and errors <= %.2f%%:\n%s\nrecommendation: %s",
             checked["endpoint_name"], checked["model_name"], load["slo_p95_ms"], 100 * load["max_error_rate"],
             picked.format_table(), uri)
    failure = picked.failure()
    if failure:
        raise AirflowFailException(f"{failure} (recommendation {uri})")
    assert picked.recommended is not None  # no failure: a size was picked
    log.info("recommended serverless_memory_mb: %d (the endpoint serves %s MB now)", picked.recommended.memory_mb,
             checked.get("current_memory_mb") or "-")
    return {**document, "recommendation_uri": uri}


def teardown_task(checked: Mapping[str, Any], run_id: str) -> dict[str, Any]:
    """Delete every temporary endpoint and config of this run (only those); idempotent, whatever ran before."""
    sagemaker = aws.client("sagemaker")
    outcomes: dict[str, Any] = {}
    errors = []
    for candidate in checked["candidates"]:
        name = candidate["endpoint_name"]
        try:
            outcomes[name] = hook.delete_candidate(sagemaker, name, run_id, poll_s=default_poll_seconds())
        except Exception as exc:  # keep deleting the others; the task fails at the end, naming this one
            log.exception("could not delete %s", name)
            errors.append(f"{name}: {exc}")
            continue
        log.info("%s: endpoint %s, endpoint config %s", name, outcomes[name]["endpoint"],
                 outcomes[name]["endpoint_config"])
    if errors:
        raise AirflowException("temporary right-size resources left behind (a retry deletes them): "
                               + "; ".join(errors))
    return outcomes
