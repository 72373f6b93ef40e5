"""Which existing training job a run may reuse: the job statuses that matter and what a same-named
job was asked to do differently. No Airflow, no AWS.
"""

from __future__ import annotations

from typing import Any

RUNNING = ("InProgress", "Stopping")
REUSABLE = (*RUNNING, "Completed")
# The provider's hook counts only "Failed" as failed; a Stopped job produced no model either.
UNSUCCESSFUL = ("Failed", "Stopped")


def job_differences(job: dict[str, Any], request: dict[str, Any]) -> list[str]:
    """What a same-named job was asked to do differently: reusing it would return the wrong model."""
    out = []
    if job.get("HyperParameters", {}) != request.get("HyperParameters", {}):
        changed = sorted(k for k in set(job.get("HyperParameters", {})) | set(request.get("HyperParameters", {}))
                         if job.get("HyperParameters", {}).get(k) != request.get("HyperParameters", {}).get(k))
        out.append(f"HyperParameters differ in {changed}")

    if input_uris(job) != input_uris(request):
        out.append(f"InputDataConfig S3Uri: existing {input_uris(job)}, requested {input_uris(request)}")
    image = (job.get("AlgorithmSpecification") or {}).get("TrainingImage")
    wanted = (request.get("AlgorithmSpecification") or {}).get("TrainingImage")
    if image != wanted:
        out.append(f"TrainingImage: existing {image}, requested {wanted}")
    return out


def input_uris(config: dict[str, Any]) -> dict[str, str]:
    """Channel name -> S3Uri of a training job's (or request's) input channels."""
    return {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in config.get("InputDataConfig", [])}
