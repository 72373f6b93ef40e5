"""The pipeline's ``smoke_test`` stage: one validated, labeled image through the endpoint.

Knows :class:`~sagemaker_vision.core.config.PipelineConfig`; the call is
:func:`sagemaker_vision.hooks.sagemaker_runtime.invoke_and_decode`, the decoding
:mod:`sagemaker_vision.core.inference`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sagemaker_vision.core.inference import ClassMap
from sagemaker_vision.core.naming import smoke_report_uri
from sagemaker_vision.hooks import base as hooks_base
from sagemaker_vision.hooks import s3
from sagemaker_vision.hooks.sagemaker_runtime import invoke_and_decode
from sagemaker_vision.pipeline.images import pick_smoke_image

if TYPE_CHECKING:
    from sagemaker_vision.core.config import PipelineConfig

log = logging.getLogger(__name__)


def smoke_test(cfg: PipelineConfig, class_map: ClassMap, *, min_score: float = 0.2,
               manifests: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The pipeline's ``smoke_test`` stage: one validated, labeled image through the endpoint.

    The image is :func:`sagemaker_vision.pipeline.images.pick_smoke_image`'s: the first of this
    run's validation split (then train) that has boxes and passes the image checks, so a corrupt
    file the sync left in the partition is never sent. Every message, success or failure, names its
    s3 URI. Fails when the endpoint is not InService or replies with anything but well-formed
    detections; writes ``smoke_test.json`` next to the load-test report and returns it.
    """
    sagemaker = hooks_base.client("sagemaker")
    runtime = hooks_base.client("sagemaker-runtime")
    s3_client = hooks_base.client("s3")
    image = pick_smoke_image(cfg, s3_client, manifests)
    status = sagemaker.describe_endpoint(EndpointName=cfg.endpoint_name)["EndpointStatus"]
    if status != "InService":
        raise RuntimeError(f"endpoint {cfg.endpoint_name!r} is {status}, not InService; smoke image {image.uri} "
                           "was not sent")
    try:
        boxes = invoke_and_decode(runtime, cfg.endpoint_name, image.body, image.content_type, class_map,
                                  min_score=min_score)
    except Exception as exc:  # a ClientError (ModelError, ...) or a malformed reply
        raise RuntimeError(f"smoke test of endpoint {cfg.endpoint_name!r} with {image.uri} "
                           f"({image.content_type}, {image.width}x{image.height}) failed: {exc}") from exc
    log.info("Smoke test of endpoint %r with %s (%s, from %s): %d boxes at score >= %s", cfg.endpoint_name,
             image.uri, image.content_type, image.manifest_uri, len(boxes), min_score)
    result = {
        "endpoint_name": cfg.endpoint_name,
        "endpoint_status": status,
        "image": image.uri,
        "image_from": image.manifest_uri,
        "content_type": image.content_type,
        "min_score": min_score,
        "boxes": [box.to_dict() for box in boxes],
    }
    s3.put_json(s3_client, smoke_report_uri(cfg), result)
    return result
