"""hooks.right_size on a fake SageMaker client: the wait before DeleteEndpoint, its bound, and what is refused."""

from __future__ import annotations

from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowException
from botocore.exceptions import ClientError

from sagemaker_vision.core.right_size import candidate_tags
from sagemaker_vision.core.validate import ConfigError
from sagemaker_vision.hooks import right_size as hook
from sagemaker_vision.hooks.sagemaker import ResourceConflictError

NAME = "shapes-rs1024-0000abcd"


def missing(operation: str) -> ClientError:
    return ClientError({"Error": {"Code": "ValidationException", "Message": "Could not find it"}}, operation)


class Fake:
    """A SageMaker client whose endpoint walks through ``statuses`` (one per DescribeEndpoint)."""

    def __init__(self, statuses: list[str | None], run_id: str = "r1", config: bool = True) -> None:
        self.statuses, self.calls = list(statuses), []
        self.tags = {t["Key"]: t["Value"] for t in candidate_tags("shapes", run_id, 1024)}
        self.config = config

    def describe_endpoint(self, EndpointName: str) -> dict[str, Any]:  # noqa: N803 - boto3's names
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        if status is None:
            raise missing("DescribeEndpoint")
        return {"EndpointName": EndpointName, "EndpointArn": f"arn:{EndpointName}", "EndpointStatus": status}

    def describe_endpoint_config(self, EndpointConfigName: str) -> dict[str, Any]:  # noqa: N803
        if not self.config:
            raise missing("DescribeEndpointConfig")
        return {"EndpointConfigName": EndpointConfigName, "EndpointConfigArn": f"arn:cfg:{EndpointConfigName}",
                "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": "m",
                                        "ServerlessConfig": {"MemorySizeInMB": 1024, "MaxConcurrency": 2}}]}

    def list_tags(self, **kwargs: Any) -> dict[str, Any]:
        return {"Tags": [{"Key": k, "Value": v} for k, v in self.tags.items()]}

    def delete_endpoint(self, EndpointName: str) -> None:  # noqa: N803
        self.calls.append(("delete_endpoint", EndpointName))

    def delete_endpoint_config(self, EndpointConfigName: str) -> None:  # noqa: N803
        self.calls.append(("delete_endpoint_config", EndpointConfigName))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_a_creating_endpoint_is_waited_out_then_deleted_with_its_config():
    fake, clock = Fake(["Creating", "Creating", "Creating", "InService"]), Clock()  # the first read, then 2 waits
    outcome = hook.delete_candidate(fake, NAME, "r1", poll_s=30, sleep=clock.sleep, clock=lambda: clock.now)
    assert outcome == {"endpoint": "deleted", "endpoint_config": "deleted"}
    assert fake.calls == [("delete_endpoint", NAME), ("delete_endpoint_config", NAME)] and clock.now == 60


def test_the_wait_is_bounded_by_the_creation_budget_and_says_what_to_do():
    fake, clock = Fake(["Creating"]), Clock()
    with pytest.raises(AirflowException, match=r"still Creating after 9000 s; DeleteEndpoint is refused"):
        hook.delete_candidate(fake, NAME, "r1", poll_s=600, sleep=clock.sleep, clock=lambda: clock.now)
    assert fake.calls == []  # nothing deleted: the config must outlive its endpoint


def test_a_failed_or_deleting_endpoint_is_not_waited_for():
    failed = Fake(["Failed"])
    assert hook.delete_candidate(failed, NAME, "r1", sleep=pytest.fail)["endpoint"] == "deleted"
    deleting = Fake(["Deleting"], config=False)
    assert hook.delete_candidate(deleting, NAME, "r1", sleep=pytest.fail) == {
        "endpoint": "being deleted", "endpoint_config": "already gone"}
    assert deleting.calls == []


def test_another_runs_resources_are_neither_deleted_nor_reused():
    other = Fake(["InService"], run_id="r2")
    assert hook.delete_candidate(other, NAME, "r1") == {"endpoint": "not this run's: kept",
                                                        "endpoint_config": "not this run's: kept"}
    assert other.calls == []
    with pytest.raises(ResourceConflictError, match="is not this run's"):
        hook.ensure_candidate_config(other, {"EndpointConfigName": NAME}, "r1")


def test_an_instance_endpoint_is_refused_naming_the_field():
    class Provisioned(Fake):
        def describe_endpoint_config(self, EndpointConfigName: str) -> dict[str, Any]:  # noqa: N803
            return {"ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": "m",
                                            "InstanceType": "ml.m5.large"}]}

    class Serving(Provisioned):
        def describe_endpoint(self, EndpointName: str) -> dict[str, Any]:  # noqa: N803
            return {**super().describe_endpoint(EndpointName), "EndpointConfigName": "c"}

    with pytest.raises(ConfigError, match=r"^endpoint_name: shapes is a provisioned endpoint .*ml\.m5\.large"):
        hook.serving(Serving(["InService"]), "shapes")


class Gone(Fake):
    """An endpoint the teardown deleted: gone until CreateEndpoint, then Creating, then InService."""

    def __init__(self) -> None:
        super().__init__([None])
        self.created: list[dict[str, Any]] = []

    def create_endpoint(self, **request: Any) -> None:
        self.created.append(request)
        self.statuses = ["Creating", "InService"]


def test_a_cleared_sizes_endpoint_is_created_again_and_waited_for_before_its_test():
    fake, clock = Gone(), Clock()
    tags = candidate_tags("shapes", "r1", 1024)
    outcome = hook.ensure_candidate_endpoint(fake, NAME, tags, "r1", budget_s=600, poll_s=30, sleep=clock.sleep,
                                             clock=lambda: clock.now)
    assert outcome == "recreated" and clock.now == 30
    assert fake.created == [{"EndpointName": NAME, "EndpointConfigName": NAME, "Tags": tags}]
    # an endpoint already up (the usual first try: deploy waited for it) is used as it is, no wait
    up = Fake(["InService"])
    assert hook.ensure_candidate_endpoint(up, NAME, tags, "r1", budget_s=600, poll_s=30, sleep=pytest.fail) \
        == "in service"


def test_a_cleared_sizes_endpoint_that_fails_or_is_another_runs_is_refused():
    with pytest.raises(AirflowException, match="is Failed"):
        hook.ensure_candidate_endpoint(Fake(["Failed"]), NAME, [], "r1", budget_s=600, poll_s=30, sleep=pytest.fail)
    with pytest.raises(ResourceConflictError, match="is not this run's"):
        hook.ensure_candidate_endpoint(Fake(["InService"], run_id="r2"), NAME, [], "r1", budget_s=600, poll_s=30)
    clock = Clock()
    with pytest.raises(AirflowException, match="still Creating after 90 s"):
        hook.ensure_candidate_endpoint(Fake(["Creating"]), NAME, [], "r1", budget_s=90, poll_s=30,
                                       sleep=clock.sleep, clock=lambda: clock.now)
