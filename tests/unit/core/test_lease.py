"""The pure part of the endpoint lease (core.lease): S3's clock, the lock's key, the run that owns it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from types import SimpleNamespace

from sagemaker_vision.core import lease as cl


def cfg(policy: str = "all_at_once", endpoint_type: str = "serverless", max_seconds: float = 300):
    return SimpleNamespace(prefix="object-detection", region="us-east-1", endpoint_name="shapes-detector",
                           bucket="b", endpoint=SimpleNamespace(endpoint_type=endpoint_type, instance_count=1),
                           deploy=SimpleNamespace(deployment_policy=policy),
                           load_test=SimpleNamespace(max_seconds=max_seconds))


def test_server_time_comes_from_the_date_header():
    when = datetime(2026, 12, 1, 8, 30, 5, tzinfo=UTC)
    assert cl.server_time({"ResponseMetadata": {"HTTPHeaders": {"date": format_datetime(when, usegmt=True)}}}) == when


def test_the_lease_key_is_per_region_and_endpoint_whatever_the_pipeline_prefix():
    """Two runs with different ``prefix`` params deploying one endpoint lock one object (and the
    manual DAGs, which have no prefix, the same one); SageMaker endpoint names are case-insensitive."""
    key = "sagemaker-vision-locks/endpoints/us-east-1/shapes-detector.json"
    assert cl.lease_key(cfg()) == key
    other_prefix = SimpleNamespace(**{**vars(cfg()), "prefix": "team-b/experiments"})
    assert cl.lease_key(other_prefix) == key
    assert cl.lease_key(cl.LeaseTarget("b", "us-east-1", "Shapes-Detector", 60)) == key
    assert cl.lease_key(cl.LeaseTarget("b", "eu-west-1", "shapes-detector", 60)) != key


def test_the_owner_tells_a_re_created_run_from_the_first_and_stays_the_same_for_one_run():
    def context(run_after, start):
        return {"dag_run": SimpleNamespace(dag_id="shapes-detector.pipeline", run_id="manual__x",
                                           run_after=run_after, start_date=start)}

    first = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    owner = cl.owner_of(context(first, first))
    assert owner.startswith("shapes-detector.pipeline/manual__x/")
    # A clear or a retry restarts the run (start_date changes), not its identity.
    assert cl.owner_of(context(first, first + timedelta(hours=1))) == owner
    # The same run id triggered again later (the run was deleted) is another owner.
    assert cl.owner_of(context(first + timedelta(days=1), first + timedelta(days=1))) != owner
