"""The rollback operator: after a failed smoke or load test, put back the config that served before the deploy.

A :class:`~sagemaker_vision.operators.deploy.DeployEndpointOperator` whose target is decided at run
time from the deploy's result and the endpoint's deployed-over tag; it always fails the task, naming
what serves afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, AirflowSkipException

from sagemaker_vision.core.task_ids import sibling_dag_id
from sagemaker_vision.core.validate import validate_sagemaker_name
from sagemaker_vision.hooks.sagemaker import deployed_over, describe_or_none, serving_summary
from sagemaker_vision.links.sagemaker import SageMakerEndpointLink, persist_links
from sagemaker_vision.operators.deploy import DeployEndpointOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class RollbackEndpointOperator(DeployEndpointOperator):
    """After a failed smoke or load test: put the endpoint back on the config that served before the deploy.

    Runs with ``trigger_rule="one_failed"`` downstream of the tests, inside the endpoint lease. It
    reads what ``deploy_task_id`` returned (``previous_config``, ``action``) and:

    * ``updated``: UpdateEndpoint back to ``previous_config`` (all at once, no rollback alarms:
      alarms tripped by the bad model must not roll the rollback back), waiting until InService
      within the deploy's wait budget (``core.endpoint_waits``), deferrable like the deploy;
    * ``created`` (a first deploy): nothing older exists. The endpoint is left serving the new
      model rather than deleted: an endpoint that answers is what a user expects to find, and
      ``<pipeline>.teardown`` deletes it on request. The message says so;
    * ``unchanged`` (it served this config before the deploy ran): nothing to roll back.

    It skips (``AirflowSkipException``) when this run deployed nothing: no deploy result, or the
    deploy did not succeed (``one_failed`` also fires on the ``upstream_failed`` of a failure
    before the deploy: estimate_costs, sync, train, the lease...; a failed deploy says what
    serves itself). The run still ends failed then: the failure is upstream of the leaf
    ``tests_passed`` (``train_and_deploy``). Otherwise it renews the lease right before its
    UpdateEndpoint (``renew_lease(context, "rollback")``: the pipeline's ``pipeline.deploy.hold``),
    and always fails the task, so the run ends failed, and its message names the test that failed and
    the config and model that serve afterwards.
    """

    def __init__(self, *, deploy_task_id: str = "deploy",
                 renew_lease: Callable[[Mapping[str, Any], str], None] | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("endpoint_config_name", "")  # decided at run time from the deploy's result
        kwargs.setdefault("deployment_policy", "all_at_once")
        kwargs.setdefault("rollback_alarms", False)
        kwargs.setdefault("record_previous", False)  # the deployed-over tag keeps naming the config to return to
        super().__init__(**kwargs)
        self.deploy_task_id = deploy_task_id
        self.renew_lease = renew_lease

    def _failed_upstream(self, context: Context) -> str:
        try:
            from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance  # lazy: keeps DAG parsing fast

            ti = context["ti"]
            states = RuntimeTaskInstance.get_task_states(dag_id=ti.dag_id, task_ids=sorted(self.upstream_task_ids),
                                                         run_ids=[ti.run_id]).get(ti.run_id, {})
            failed = sorted(t for t, s in states.items() if str(s) == "failed")
            if failed:
                return ", ".join(failed) + " failed"
            if any(str(s) == "upstream_failed" for s in states.values()):
                return "a task before the tests (the deploy or autoscaling) failed"
        except Exception:  # noqa: BLE001 - only the wording of the message depends on it
            self.log.debug("Could not read the upstream states", exc_info=True)
        return f"a test after the deploy ({', '.join(sorted(self.upstream_task_ids))}) failed"

    def _fail(self, context: Context, message: str, kind: type[AirflowException] = AirflowFailException
              ) -> AirflowException:
        """The task's error, also kept in XCom (``outcome``) for the UI and for callers that inspect runs."""
        try:
            context["ti"].xcom_push(key="outcome", value=message)
        except Exception:  # noqa: BLE001 - the error itself must still be raised
            self.log.debug("Could not push the outcome to XCom", exc_info=True)
        return kind(message)

    def _deployed(self, context: Context) -> Mapping[str, Any] | None:
        result = context["ti"].xcom_pull(task_ids=self.deploy_task_id)
        return result if isinstance(result, Mapping) and result.get("endpoint_config_name") else None

    def _deploy_succeeded(self, context: Context) -> bool | None:
        """Whether this run's deploy task is in state success (None: unknown, e.g. outside a scheduler)."""
        try:
            from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance  # lazy: keeps DAG parsing fast

            ti = context["ti"]
            states = RuntimeTaskInstance.get_task_states(dag_id=ti.dag_id, task_ids=[self.deploy_task_id],
                                                         run_ids=[ti.run_id]).get(ti.run_id, {})
        except Exception:  # noqa: BLE001 - then the deploy's XCom alone decides
            self.log.debug("Could not read the deploy's state", exc_info=True)
            return None
        state = states.get(self.deploy_task_id)
        return None if state is None else str(state) == "success"

    def execute(self, context: Context) -> dict[str, Any]:
        self._validate_name_only()
        persist_links(context, self, self.hook, (SageMakerEndpointLink,), endpoint_name=self.endpoint_name)
        deployed = self._deployed(context)
        if deployed is None or self._deploy_succeeded(context) is False:
            message = (f"Nothing to roll back: this run deployed nothing to {self.endpoint_name} (a task before "
                       f"`{self.deploy_task_id}`, or the deploy itself, failed); the endpoint was not touched here. "
                       "The run fails on that task")
            self.log.info(message)
            raise AirflowSkipException(message)
        why = self._failed_upstream(context)
        client = self.hook.conn
        new = deployed["endpoint_config_name"]
        previous = self._previous(client, new, deployed)
        if not previous:
            raise self._fail(
                context,
                f"{why} after this run created endpoint {self.endpoint_name}: there is no older config to roll back "
                f"to, so the NEW model stays serving. {serving_summary(client, self.endpoint_name)}. It was left "
                f"serving rather than deleted; run {sibling_dag_id(context['ti'].dag_id, 'teardown')} to delete it")
        if previous == new:
            raise self._fail(
                context,
                f"{why}; {self.endpoint_name} already served {new} before this run's deploy, so there is no older "
                f"config recorded to roll back to. {serving_summary(client, self.endpoint_name)}")
        if describe_or_none(client, "endpoint_config", previous) is None:
            raise self._fail(
                context,
                f"{why}; cannot roll back: the previous config {previous} no longer exists, so the NEW model stays "
                f"serving. {serving_summary(client, self.endpoint_name)}")
        self.endpoint_config_name = previous
        if self.renew_lease is not None:
            self.renew_lease(context, "rollback")  # still this run's endpoint, renewed, right before the UpdateEndpoint
        self.log.warning("%s: rolling %s back from %s to %s", why, self.endpoint_name, new, previous)
        try:
            result = self._deploy(context, replans=0)
        except AirflowException as exc:
            raise self._failed_rollback(context, exc, why) from exc
        return self._rolled_back(context, result, new, why)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None, action: str = "updated",
                         previous_config: str | None = None, replans: int = 0,
                         budget: int | None = None, released: dict[str, Any] | None = None) -> dict[str, Any]:
        deployed = self._deployed(context) or {}
        # A resumed operator is rebuilt: decide the target again, as execute did.
        self.endpoint_config_name = self._previous(self.hook.conn, deployed.get("endpoint_config_name"), deployed) or ""
        why = self._failed_upstream(context)
        try:
            result = super().execute_complete(context, event, action, previous_config, replans, budget, released)
        except AirflowException as exc:
            raise self._failed_rollback(context, exc, why) from exc
        return self._rolled_back(context, result, deployed.get("endpoint_config_name"), why)

    def _failed_rollback(self, context: Context, exc: AirflowException, why: str) -> AirflowException:
        """The deploy's error, said as a rollback's (a timeout stays retryable: a retry resumes the wait)."""
        return self._fail(context, f"{why}; rolling {self.endpoint_name} back to {self.endpoint_config_name} did not "
                          f"finish: {exc}. {self.hook.serving_summary(self.endpoint_name)}", type(exc))

    def _previous(self, client: Any, new: str | None, deployed: Mapping[str, Any]) -> str | None:
        """The config ``new`` replaced: the endpoint's deployed-over tag when it names ``new``, else the
        deploy's result (None: a first deploy)."""
        endpoint = describe_or_none(client, "endpoint", self.endpoint_name) or {}
        recorded = deployed_over(client, endpoint["EndpointArn"]) if endpoint.get("EndpointArn") else None
        if recorded and recorded[0] == new:
            return recorded[1]
        previous = deployed.get("previous_config")
        return previous if previous and deployed.get("action") == "updated" else None

    def _validate_name_only(self) -> None:
        validate_sagemaker_name(self.endpoint_name, "endpoint_name")

    def _rolled_back(self, context: Context, result: Mapping[str, Any], new: str | None, why: str) -> dict[str, Any]:
        raise self._fail(
            context,
            f"{why}: rolled back to the config that served before. "
            f"{self.hook.serving_summary(self.endpoint_name)}; the new config {new} no longer serves")
