"""sagemaker-runtime InvokeEndpoint / InvokeEndpointAsync, answered before moto sees them.

Moto 5.2.5 returns canned bodies and cannot even read a binary (JPEG) body, so the middleware
routes invocations here. The "model" is a lookup: the sha256 of the request body is matched
against the sample images (precomputed at start), which get their true boxes back in the built-in
object-detection format; any other decodable image gets two low-score boxes derived from its
hash. Moto's own queued static results (``/moto-api/static/sagemaker/endpoint-results``) still
win when present, so moto's documented testing hooks keep working.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from moto.core import DEFAULT_ACCOUNT_ID
from moto.sagemaker.models import SageMakerModelBackend, sagemaker_backends
from moto.sagemakerruntime.models import sagemakerruntime_backends

from . import endpoints, s3io
from .answer_key import hashed_predictions
from .extension import Extension

Reply = tuple[int, list[tuple[str, str]], bytes]

INVOKE_PATH = re.compile(r"^/endpoints/([^/]+)/(invocations|async-invocations)$")
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/]+)/([^/]+)/")
IMAGE_TYPES = {"image/jpeg", "image/png", "application/x-image"}
ERROR_STATUS = {"ValidationError": 400, "ThrottlingException": 400, "ModelError": 424,
                "ServiceUnavailable": 503, "InternalFailure": 500, "ModelNotReadyException": 429}
_variant_rng = random.Random(0)  # weighted variant choice; seeded so runs repeat


@dataclass(frozen=True)
class Identity:
    """Who is calling and where, as moto would resolve it."""

    access_key: str
    region: str
    signing_name: str | None
    account_id: str


def identify(environ: dict[str, Any]) -> Identity:
    """Access key, region and signing service from SigV4; account the way moto picks it."""
    match = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
    access_key, region, service = match.groups() if match else ("AKIAEXAMPLE", "us-east-1", None)
    account = os.environ.get("MOTO_ACCOUNT_ID") or environ.get("HTTP_X_MOTO_ACCOUNT_ID")
    if not account:
        from moto.iam.models import get_account_id_from

        account = get_account_id_from(access_key) if match else DEFAULT_ACCOUNT_ID
    return Identity(access_key, region, service, account)


def error(code: str, message: str, **extra: Any) -> Reply:
    """A rest-json error as sagemaker-runtime sends it; botocore reads the code from the header."""
    body = json.dumps({"Message": message, "message": message, **extra}).encode()
    return ERROR_STATUS.get(code, 400), [
        ("Content-Type", "application/json"),
        ("x-amzn-ErrorType", code),
        ("x-amzn-RequestId", str(uuid.uuid4())),
    ], body


def _static_results_queued(ident: Identity, endpoint_name: str, is_async: bool) -> bool:
    runtime = sagemakerruntime_backends[ident.account_id][ident.region]
    if is_async:
        return bool(runtime.async_results_queue or runtime.results_queue
                    or endpoint_name in runtime.async_results)
    return bool(runtime.results_queue or endpoint_name in runtime.results)


class Refused(Exception):
    """Carries the error reply for a request that must not reach the "model"."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply[1])
        self.reply = reply


def _serving_endpoint(ext: Extension, backend: SageMakerModelBackend, ident: Identity, name: str
                      ) -> tuple[Any, Any]:
    """(endpoint, its current config) if it can serve; else Refused, as SageMaker refuses."""
    with ext.lock:
        endpoints.refresh_one(ext, backend, name)
        endpoint = backend.endpoints.get(name)
        if endpoint is None or endpoint.endpoint_status not in endpoints.SERVING:
            message = f"Endpoint {name} of account {ident.account_id} not found."
            raise Refused(error("ValidationError", message))
        return endpoint, backend.endpoint_configs.get(endpoint.endpoint_config_name)


def _pick_variant(endpoint: Any, target: str | None) -> str:
    """The variant that serves this call: the requested one, else weighted by CurrentWeight."""
    variants = [v for v in endpoint.production_variants if v.get("VariantName")]
    names = [v["VariantName"] for v in variants]
    if target is not None:
        if target not in names:
            raise Refused(error("ValidationError", f"The variant {target} is not present in endpoint "
                                                   f"{endpoint.endpoint_name}'s configuration."))
        return target
    weights = [float(v.get("CurrentWeight", 1.0) or 0.0) for v in variants]
    if len(names) <= 1 or not any(weights):
        return names[0] if names else "AllTraffic"
    return _variant_rng.choices(names, weights=weights)[0]


def _injected(ext: Extension, name: str) -> Reply | None:
    """Latency and error fault rules for one invocation."""
    if not ext.faults.has_request_rules:
        return None
    delay = ext.faults.latency_ms(name)
    if delay:
        time.sleep(delay / 1000)
    rule = ext.faults.take("invoke_error", name)
    if rule is None:
        garbage = ext.faults.take("garbage_body", name)
        if garbage is None:
            return None
        ext.counters["garbage_bodies_injected"] += 1
        return 200, [("Content-Type", "application/json"), ("x-amzn-RequestId", str(uuid.uuid4()))], \
            (garbage.body or "").encode()
    ext.counters["invoke_errors_injected"] += 1
    message = rule.reason or f"local_aws fault rule {rule.id}: injected {rule.code}"
    if rule.code == "ModelError":
        return error("ModelError", f"Received server error (500) from primary with message \"{message}\".",
                     OriginalStatusCode=500, OriginalMessage=message,
                     LogStreamArn=f"arn:aws:logs:::log-group:/aws/sagemaker/Endpoints/{name}")
    return error(rule.code or "InternalFailure", message)


def predict(ext: Extension, body: bytes, content_type: str | None) -> bytes | Reply:
    """The response body for ``body``, or the ModelError the container would cause."""
    if (content_type or "").split(";")[0].strip().lower() not in IMAGE_TYPES:
        return error("ModelError", "Received client error (415) from primary: unsupported content type "
                                   f"{content_type!r}; the object-detection container takes "
                                   f"{sorted(IMAGE_TYPES)}.", OriginalStatusCode=415,
                     OriginalMessage="Unsupported Media Type")
    digest = hashlib.sha256(body).hexdigest()
    known = ext.key().predictions_by_sha256.get(digest)
    if known is not None:
        return known
    if not _is_image(body):
        return error("ModelError", "Received client error (400) from primary: the body is not a "
                                   "decodable image.", OriginalStatusCode=400, OriginalMessage="Bad Request")
    return json.dumps({"prediction": hashed_predictions(digest, len(ext.key().classes))}).encode()


def _is_image(body: bytes) -> bool:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(body)):
            return True
    except (UnidentifiedImageError, OSError):
        return False


# "The maximum request and response payload size for serverless invocations is 4 MB"
# (serverless-endpoints-invoke). Read as 4,000,000 bytes: the stricter of MB and MiB.
SERVERLESS_MAX_PAYLOAD = 4_000_000


def _over_serverless_payload(config: Any, name: str, size: int) -> Reply | None:
    """The refusal a serverless endpoint gives a body over its payload limit, else None."""
    variants = getattr(config, "production_variants", None) or []
    if size <= SERVERLESS_MAX_PAYLOAD or not any(v.get("ServerlessConfig") for v in variants):
        return None
    return error("ValidationError", f"Request payload of {size} bytes for serverless endpoint {name} exceeds "
                                    f"the maximum of {SERVERLESS_MAX_PAYLOAD} bytes (4 MB).")


def invoke(ext: Extension, ident: Identity, name: str, environ: dict[str, Any], body: bytes
           ) -> Reply | None:
    """InvokeEndpoint, or None to let moto answer from its static results queue."""
    name = unquote(name)
    if _static_results_queued(ident, name, is_async=False):
        return None
    backend = sagemaker_backends[ident.account_id][ident.region]
    try:
        endpoint, config = _serving_endpoint(ext, backend, ident, name)
        too_large = _over_serverless_payload(config, name, len(body))
        if too_large:
            return too_large
        injected = _injected(ext, name)
        if injected:
            return injected
        variant = _pick_variant(endpoint, environ.get("HTTP_X_AMZN_SAGEMAKER_TARGET_VARIANT"))
    except Refused as refused:
        return refused.reply
    result = predict(ext, body, environ.get("CONTENT_TYPE"))
    if not isinstance(result, bytes):
        return result
    ext.counters["invocations"] += 1
    headers = [("Content-Type", "application/json"),
               ("x-Amzn-Invoked-Production-Variant", variant),
               ("x-amzn-RequestId", str(uuid.uuid4()))]
    custom = environ.get("HTTP_X_AMZN_SAGEMAKER_CUSTOM_ATTRIBUTES")
    if custom:
        headers.append(("X-Amzn-SageMaker-Custom-Attributes", custom))
    return 200, headers, result


# An async request's emulated time from InvokeEndpointAsync to its output object: a round estimate
# (queue plus one image's inference). Settable per endpoint: Control.set_duration("async_inference", s).
ASYNC_EMULATED_S = 30.0
# InvokeEndpointAsyncInput: "The default is 6 hours, or 21,600 seconds" / "15 minutes, or 900 seconds".
ASYNC_TTL_DEFAULT_S = 21600
ASYNC_INVOCATION_TIMEOUT_DEFAULT_S = 900


def async_result_uris(output_path: str, failure_path: str | None, key: str) -> tuple[str, str | None]:
    """Where SageMaker writes one async inference's result and error: ``<S3OutputPath>/<uuid>.out`` and
    ``<S3FailurePath>/<uuid>-error.out`` (None without a failure path)."""
    return (s3io.join(output_path, f"{key}.out"),
            s3io.join(failure_path, f"{key}-error.out") if failure_path else None)


def invoke_async(ext: Extension, ident: Identity, name: str, environ: dict[str, Any]) -> Reply | None:
    """InvokeEndpointAsync: read InputLocation now, write ``<uuid>.out`` after its emulated duration.

    A request whose emulated duration exceeds its RequestTTLSeconds plus InvocationTimeoutSeconds
    (AWS's defaults when not sent) expires: its failure object is written instead.
    """
    name = unquote(name)
    if _static_results_queued(ident, name, is_async=True):
        return None
    backend = sagemaker_backends[ident.account_id][ident.region]
    try:
        _endpoint, config = _serving_endpoint(ext, backend, ident, name)
    except Refused as refused:
        return refused.reply
    output_config = (getattr(config, "async_inference_config", None) or {}).get("OutputConfig") or {}
    if not output_config.get("S3OutputPath"):
        return error("ValidationError", f"Endpoint {name} is not configured for asynchronous inference "
                                        "(its endpoint config has no AsyncInferenceConfig).")
    location = environ.get("HTTP_X_AMZN_SAGEMAKER_INPUTLOCATION", "")
    try:
        body = s3io.read(ident.account_id, backend.partition, location)
    except s3io.S3PathError as exc:
        return error("ValidationError", f"InputLocation: {exc}")
    if body is None:
        return error("ValidationError", f"Could not access the input location {location}.")
    inference_id = environ.get("HTTP_X_AMZN_SAGEMAKER_INFERENCE_ID") or str(uuid.uuid4())
    output_uri, failure_uri = async_result_uris(output_config["S3OutputPath"], output_config.get("S3FailurePath"),
                                                str(uuid.uuid4()))
    result = _injected(ext, name) or predict(ext, body, environ.get("HTTP_X_AMZN_SAGEMAKER_CONTENT_TYPE"))
    emulated = ext.emulated_duration("async_inference", name, ASYNC_EMULATED_S)
    ttl = int(environ.get("HTTP_X_AMZN_SAGEMAKER_REQUESTTTLSECONDS") or ASYNC_TTL_DEFAULT_S)
    timeout = int(environ.get("HTTP_X_AMZN_SAGEMAKER_INVOCATIONTIMEOUTSECONDS") or ASYNC_INVOCATION_TIMEOUT_DEFAULT_S)
    if emulated > ttl + timeout:
        result = (500, [], json.dumps({"ErrorCode": "RequestExpired", "Message": (
            f"The request expired: it was not processed within RequestTTLSeconds {ttl} + "
            f"InvocationTimeoutSeconds {timeout} (emulated duration {emulated:.0f} s)")}).encode())

    def deliver() -> None:
        # Runs on the ticker; a failed inference goes to the failure path, as SageMaker does.
        target, data = (output_uri, result) if isinstance(result, bytes) else (failure_uri, result[2])
        if target is None:
            return
        try:
            s3io.write(ident.account_id, backend.partition, target, data)
            ext.counters["async_invocations_delivered"] += 1
        except s3io.S3PathError:
            ext.counters["async_invocations_undeliverable"] += 1

    ext.schedule(ext.real_seconds(min(emulated, ttl + timeout)), deliver)
    headers = [("Content-Type", "application/json"), ("X-Amzn-SageMaker-OutputLocation", output_uri),
               ("x-amzn-RequestId", str(uuid.uuid4()))]
    if failure_uri:
        headers.append(("X-Amzn-SageMaker-FailureLocation", failure_uri))
    return 202, headers, json.dumps({"InferenceId": inference_id}).encode()
