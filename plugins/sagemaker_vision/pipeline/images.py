"""Image validation, the pipeline part: the ``validate_images`` stage, the reports and the smoke image.

It reads the run's objects from S3 and knows :class:`PipelineConfig`; the checks themselves are
pure (:mod:`sagemaker_vision.core.images`, whose module doc gives the limits and their sources).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from sagemaker_vision.core.images import (
    IMAGE_FORMATS,
    MAX_LISTED,
    MAX_PIXELS,
    REPORT_NAME,
    UNLABELED_REPORT_NAME,
    ImageCheck,
    ImageValidationError,
    SmokeImage,
    check_image,
    check_name,
    human_size,
    max_bytes_for,
)
from sagemaker_vision.core.manifest_parse import load_line
from sagemaker_vision.core.validate import ConfigError
from sagemaker_vision.hooks import s3
from sagemaker_vision.hooks.load_test import load_payloads

if TYPE_CHECKING:
    from sagemaker_vision.core.config import PipelineConfig

log = logging.getLogger(__name__)


def report_uri(cfg: PipelineConfig) -> str:
    """Where this run's image report lives (under the run's prefix)."""
    return f"{cfg.report_prefix}{REPORT_NAME}"


def _check_object(s3_client: Any, uri: str, size: int, max_bytes: int) -> ImageCheck:
    if (reason := check_name(uri)) is not None:
        return ImageCheck(uri, size, reason)
    if size > max_bytes:  # no need to download it to know
        return ImageCheck(uri, size, f"{human_size(size)} is larger than the {human_size(max_bytes)} this "
                          "endpoint type accepts per request")
    data = s3.read_bytes(s3_client, uri) if size else b""
    check = check_image(uri, data, max_bytes=max_bytes)
    return check


def validate_images(s3_client: Any, objects: Iterable[tuple[str, int]], *, max_bytes: int,
                    max_workers: int = 8) -> list[ImageCheck]:
    """Check every ``(s3 uri, size)``, a few at a time; results in the input's order."""
    items = list(objects)
    with ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(items) or 1)),
                            thread_name_prefix="imgcheck") as pool:
        return list(pool.map(lambda item: _check_object(s3_client, item[0], item[1], max_bytes), items))


def validate_partition(cfg: PipelineConfig, s3_client: Any) -> dict[str, Any]:
    """The ``validate_images`` stage: check the partition, write the report, apply the policy."""
    policy = getattr(cfg, "bad_image_policy", "fail")
    max_bytes = max_bytes_for(cfg.endpoint.endpoint_type)
    bucket = cfg.bucket
    objects = sorted((f"s3://{bucket}/{key}", size) for key, size in s3.list_keys(s3_client, cfg.raw_prefix))
    if not objects:
        raise ConfigError("image_source", f"no images were synced to {cfg.raw_prefix}")
    checks = validate_images(s3_client, objects, max_bytes=max_bytes)
    bad = [c for c in checks if not c.ok]
    good = [c for c in checks if c.ok]
    report = {
        "partition": cfg.run.partition,
        "prefix": cfg.raw_prefix,
        "policy": policy,
        "limits": {"max_bytes": max_bytes, "max_pixels": MAX_PIXELS, "formats": sorted(set(IMAGE_FORMATS.values())),
                   "endpoint_type": cfg.endpoint.endpoint_type},
        "checked": len(checks),
        "valid": len(good),
        "bad": [{"uri": c.uri, "reason": c.reason, "bytes": c.size} for c in bad],
    }
    uri = s3.put_json(s3_client, report_uri(cfg), report)
    for c in bad:
        log.warning("Bad image %s: %s", c.uri, c.reason)
    log.info("Validated %d images under %s: %d good, %d bad (policy %s); report %s",
             len(checks), cfg.raw_prefix, len(good), len(bad), policy, uri)
    if bad and (policy == "fail" or not good):
        listed = "\n  ".join(f"{c.uri}: {c.reason}" for c in bad[:MAX_LISTED])
        more = f"\n  ... and {len(bad) - MAX_LISTED} more" if len(bad) > MAX_LISTED else ""
        why = ("bad_image_policy is fail" if policy == "fail"
               else "bad_image_policy is skip, but no good image is left")
        hint = ("fix or remove each file in image_source AND delete it under the partition (sync never "
                "deletes), or rerun with bad_image_policy=skip to leave them out")
        raise ImageValidationError(f"{len(bad)} of {len(checks)} images under {cfg.raw_prefix} are bad ({why}; "
                                   f"report {uri}):\n  {listed}{more}\n{hint}")
    return {"report_uri": uri, "checked": len(checks), "valid": len(good), "bad": len(bad), "policy": policy}


def bad_image_uris(cfg: PipelineConfig, s3_client: Any) -> set[str]:
    """The images this run's report calls bad (empty without a report: nothing was judged bad)."""
    uri = report_uri(cfg)
    if not s3.exists(s3_client, uri):
        return set()
    report = json.loads(s3.read_bytes(s3_client, uri))
    return {entry["uri"] for entry in report.get("bad", ())}


def report_unlabeled(cfg: PipelineConfig, s3_client: Any, images: Sequence[str], labeled: Iterable[str], *,
                     backend: str, reason: str) -> dict[str, Any] | None:
    """Report (S3 and log) each of ``images`` that has no line in ``labeled``; None when there is none."""
    have = set(labeled)
    missing = sorted(set(images) - have)
    if not missing:
        return None
    uri = f"{cfg.report_prefix}{UNLABELED_REPORT_NAME}"
    report = {"partition": cfg.run.partition, "backend": backend, "reason": reason,
              "dropped": [{"uri": m, "reason": reason} for m in missing]}
    s3.put_json(s3_client, uri, report)
    for m in missing:
        log.warning("Image left out of training: %s: %s", m, reason)
    log.warning("%d of %d images have no label and are left out of training (%s); report %s",
                len(missing), len(images), backend, uri)
    return {"report_uri": uri, "dropped": len(missing)}


def pick_smoke_image(cfg: PipelineConfig, s3_client: Any, manifests: Mapping[str, Any] | None = None, *,
                     max_bytes: int | None = None, max_candidates: int = 50) -> SmokeImage:
    """The first image, validation split first, that has at least one box and passes :func:`check_image`.

    Images this run's report calls bad are passed over without a download; each candidate is
    re-checked from S3, so a retrain run (which validates nothing itself) is as safe. Raises
    ``RuntimeError`` naming the manifests and the reasons when no image qualifies.
    """
    manifests = manifests or {}
    sources = [manifests.get("validation_uri") or cfg.validation_manifest_uri,
               manifests.get("train_uri") or cfg.train_manifest_uri]
    max_bytes = max_bytes or max_bytes_for(cfg.endpoint.endpoint_type)
    bad = bad_image_uris(cfg, s3_client)
    attr = cfg.label_attribute
    rejected: list[str] = []
    tried = 0
    for manifest_uri in sources:
        for lineno, raw in enumerate(s3.iter_lines(s3_client, manifest_uri, "manifest_uri"), start=1):
            rec = load_line(raw, source=manifest_uri, lineno=lineno)  # the one manifest parser
            if rec is None:
                continue
            uri = rec.get("source-ref")
            anns = (rec.get(attr) or {}).get("annotations") or []
            if not isinstance(uri, str) or not anns:
                continue
            if uri in bad:
                rejected.append(f"{uri}: bad in {report_uri(cfg)}")
                continue
            tried += 1
            data = s3.read_bytes(s3_client, uri)
            check = check_image(uri, data, max_bytes=max_bytes)
            if check.ok:
                assert check.content_type and check.width and check.height
                return SmokeImage(uri, check.content_type, check.width, check.height, len(anns), manifest_uri, data)
            rejected.append(f"{uri}: {check.reason}")
            if tried >= max_candidates:
                break
    detail = ("; ".join(rejected[:10])) or "no line has a box"
    raise RuntimeError(f"no labeled, valid image to smoke-test {cfg.endpoint_name!r} with in "
                       f"{' or '.join(sources)} ({detail})")


def check_test_images(cfg: PipelineConfig, s3_client: Any, manifests: Mapping[str, Any] | None = None, *,
                      max_payloads: int = 20) -> dict[str, Any]:
    """Before anything is trained or deployed: the images the smoke and load tests will send fit the endpoint.

    Makes the very choices those tests make after the deploy -- :func:`pick_smoke_image`, and for
    real-time endpoints the load test's payload set (``load_payloads`` on the validation split,
    ``max_payloads`` of them) -- against the limit of the endpoint type this run deploys
    (:func:`max_bytes_for`). A run whose images were validated for another endpoint type (the
    retrain DAG validates none itself) fails here, naming the file and its size, instead of after
    a paid deploy. Raises :class:`ImageValidationError`.
    """
    endpoint_type = cfg.endpoint.endpoint_type
    max_bytes = max_bytes_for(endpoint_type)
    try:
        smoke = pick_smoke_image(cfg, s3_client, manifests, max_bytes=max_bytes)
    except RuntimeError as exc:
        raise ImageValidationError(f"the smoke test would have no image to send to the {endpoint_type} endpoint "
                                   f"(limit {human_size(max_bytes)}): {exc}") from None
    result: dict[str, Any] = {"endpoint_type": endpoint_type, "max_bytes": max_bytes, "smoke_image": smoke.uri}
    if endpoint_type != "async":  # async endpoints get no load test (no synchronous traffic)
        validation = (manifests or {}).get("validation_uri") or cfg.validation_manifest_uri
        try:
            payloads = load_payloads(validation, s3_client=s3_client, max_payloads=max_payloads, max_bytes=max_bytes)
        except ValueError as exc:
            raise ImageValidationError(f"the load test could not send the images of {validation} to the "
                                       f"{endpoint_type} endpoint: {exc}") from None
        result["load_test_payloads"] = len(payloads)
    log.info("The smoke%s test images fit the %s endpoint (at most %s each): smoke image %s",
             "" if endpoint_type == "async" else " and load", endpoint_type, human_size(max_bytes), smoke.uri)
    return result
