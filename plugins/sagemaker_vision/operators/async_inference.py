"""The asynchronous endpoint's smoke test: one sample image through the endpoint, decoded into boxes."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils import validate_execute_complete_event
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.common.compat.sdk import AirflowException, conf

from sagemaker_vision.core import endpoint_waits as waits
from sagemaker_vision.core.async_inference import (
    AsyncInvocation,
    check_async_endpoint,
    class_map_param,
    min_score_param,
    smoke_input_uri,
)
from sagemaker_vision.core.autoscaling import int_field
from sagemaker_vision.core.inference import content_type_for, decode_detections, image_size
from sagemaker_vision.core.validate import ConfigError, validate_sagemaker_name
from sagemaker_vision.hooks import s3 as s3io
from sagemaker_vision.hooks.async_inference import start_async_inference
from sagemaker_vision.hooks.base import botocore_config
from sagemaker_vision.triggers.async_inference import AsyncInferenceOutputTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context

DEFAULT_WAITER_DELAY = 30
# None: enough checks for the request's lifetime (core.endpoint_waits.async_result_budget).
DEFAULT_WAITER_MAX_ATTEMPTS: int | None = None
# The smoke request's own lifetime: an hour in the queue (a scale-out from zero takes minutes; the
# default would be 6 h) and AWS's default 15 minutes of processing (InvokeEndpointAsyncInput).
SMOKE_REQUEST_TTL_S = 3600
SMOKE_INVOCATION_TIMEOUT_S = 900
FAILURE_EXCERPT_CHARS = 2000


class AsyncInferenceSmokeOperator(AwsBaseOperator[S3Hook]):
    """Send one sample image through an asynchronous endpoint and decode the boxes it returns.

    Uploads ``sample_image`` (a local path relative to the project root, or ``s3://``) to
    ``<input_prefix>/async-smoke/``, calls InvokeEndpointAsync, then waits for the output object,
    watching the failure object too: deferrable, in the triggerer, without a worker slot. The
    output JSON is decoded with :func:`~sagemaker_vision.core.inference.decode_detections` into pixel
    boxes of the sample's size. Fails, naming the object, on a failure object, a timeout, or an
    output that is not object-detection JSON. Returns (to XCom) the locations and the boxes.

    :param endpoint_name: The asynchronous endpoint; must be InService (templated).
    :param sample_image: The JPEG or PNG to send (templated).
    :param input_prefix: ``s3://`` prefix to upload it under, e.g. the run's prefix (templated).
    :param class_map: ``{class_id: name}`` or a list of names by id; JSON text is accepted (templated).
    :param min_score: Drop boxes scored below this (templated).
    :param waiter_delay: Seconds between two checks for the output.
    :param waiter_max_attempts: Checks before giving up. Default: enough for the request's lifetime,
        ``request_ttl_s + invocation_timeout_s`` (after that AWS expires the request).
    :param request_ttl_s: RequestTTLSeconds sent with the request (60-21600).
    :param invocation_timeout_s: InvocationTimeoutSeconds sent with the request (1-3600).
    :param deferrable: Wait in the triggerer instead of polling from the worker.
    """

    aws_hook_class = S3Hook
    template_fields: Sequence[str] = aws_template_fields(
        "endpoint_name", "sample_image", "input_prefix", "class_map", "min_score"
    )
    template_fields_renderers = {"class_map": "json"}
    ui_color = "#d6e9f4"

    def __init__(
        self,
        *,
        endpoint_name: str,
        sample_image: str,
        input_prefix: str,
        class_map: Mapping[int | str, str] | Sequence[str] | str,
        min_score: float | str = 0.0,
        waiter_delay: int = DEFAULT_WAITER_DELAY,
        waiter_max_attempts: int | None = DEFAULT_WAITER_MAX_ATTEMPTS,
        request_ttl_s: int = SMOKE_REQUEST_TTL_S,
        invocation_timeout_s: int = SMOKE_INVOCATION_TIMEOUT_S,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.request_ttl_s = request_ttl_s
        self.invocation_timeout_s = invocation_timeout_s
        self.endpoint_name = endpoint_name
        self.sample_image = sample_image
        self.input_prefix = input_prefix
        self.class_map = class_map
        self.min_score = min_score
        self.waiter_delay = waiter_delay
        self.waiter_max_attempts = waiter_max_attempts
        self.deferrable = deferrable

    def _client(self, service: str) -> Any:
        params = self._hook_parameters
        return AwsBaseHook(client_type=service, aws_conn_id=params["aws_conn_id"], region_name=params["region_name"],
                           verify=params["verify"], config=params["config"] or botocore_config()).conn

    def execute(self, context: Context) -> dict[str, Any]:
        # Everything checkable without AWS is checked first.
        validate_sagemaker_name(self.endpoint_name, "endpoint_name")
        class_map_param(self.class_map)
        min_score_param(self.min_score)
        int_field(self.waiter_delay, "waiter_delay", 1)
        int_field(self.request_ttl_s, "request_ttl_s", 60, 21600)
        int_field(self.invocation_timeout_s, "invocation_timeout_s", 1, 3600)
        if self.waiter_max_attempts is None:
            self.waiter_max_attempts = waits.max_attempts(
                waits.async_result_budget(self.request_ttl_s, self.invocation_timeout_s), self.waiter_delay)
        int_field(self.waiter_max_attempts, "waiter_max_attempts", 1)
        try:
            content_type = content_type_for(self.sample_image)
        except ValueError as exc:
            raise ConfigError("sample_image", str(exc)) from None
        input_uri = smoke_input_uri(self.input_prefix, self.sample_image)

        s3 = self.hook.conn
        image = s3io.read_bytes(s3, self.sample_image, "sample_image")
        try:
            width, height = image_size(image)
        except ValueError as exc:
            raise ConfigError("sample_image", f"{self.sample_image}: {exc}") from None
        check_async_endpoint(self._client("sagemaker").describe_endpoint(EndpointName=self.endpoint_name))
        s3io.put_bytes(s3, input_uri, image, content_type)
        invocation = start_async_inference(self._client("sagemaker-runtime"), self.endpoint_name, input_uri,
                                           content_type, request_ttl_s=self.request_ttl_s,
                                           invocation_timeout_s=self.invocation_timeout_s)
        self.log.info("Invoked %s asynchronously with %s (%dx%d); output will be %s, failures %s",
                      self.endpoint_name, input_uri, width, height, invocation.output_location,
                      invocation.failure_location or "(no S3FailurePath)")
        resume = {
            "input_location": input_uri,
            "output_location": invocation.output_location,
            "failure_location": invocation.failure_location,
            "image_width": width,
            "image_height": height,
        }
        if self.deferrable:
            self.defer(
                trigger=AsyncInferenceOutputTrigger(
                    output_location=invocation.output_location,
                    failure_location=invocation.failure_location,
                    poll_interval=self.waiter_delay,
                    max_attempts=self.waiter_max_attempts,
                    aws_conn_id=self.aws_conn_id,
                    region_name=self.region_name,
                    verify=self.verify,
                    botocore_config=self.botocore_config,
                    resume=resume,
                ),
                method_name="execute_complete",
                kwargs=resume,
                # The trigger stops itself after its attempts; this only catches a lost trigger.
                timeout=timedelta(seconds=self.waiter_delay * self.waiter_max_attempts + 300),
            )
        return self.execute_complete(context, self._poll(invocation, self.waiter_max_attempts), **resume)

    def _poll(self, invocation: AsyncInvocation, max_attempts: int) -> dict[str, Any]:
        """The trigger's event, computed on the worker: bounded HeadObject polling of both objects."""
        s3 = self.hook.conn
        watched = [("success", invocation.output_location)]
        if invocation.failure_location:
            watched.append(("failed", invocation.failure_location))
        event: dict[str, Any] = {"output_location": invocation.output_location,
                                 "failure_location": invocation.failure_location}
        for attempt in range(1, max_attempts + 1):
            for status, uri in watched:
                if s3io.exists(s3, uri):
                    return {**event, "status": status}
            self.log.info("No output at %s yet (check %d of %d)", invocation.output_location, attempt,
                          max_attempts)
            if attempt < max_attempts:
                time.sleep(self.waiter_delay)
        return {**event, "status": "timeout",
                "message": f"nothing after {max_attempts} checks {self.waiter_delay} s apart"}

    def execute_complete(
        self,
        context: Context,
        event: dict[str, Any] | None = None,
        **resume: Any,
    ) -> dict[str, Any]:
        """Resume after the output (or failure) object appeared: decode it, or fail naming it."""
        event = validate_execute_complete_event(event)
        resume = resume or event.get("resume") or {}
        try:
            input_location, output_location = resume["input_location"], resume["output_location"]
            failure_location: str | None = resume.get("failure_location")
            image_width, image_height = resume["image_width"], resume["image_height"]
        except KeyError as exc:
            raise AirflowException(f"resume data missing {exc} in trigger event {event}") from None
        status = event.get("status")
        s3 = self.hook.conn
        if status == "failed" and failure_location:  # the trigger reports "failed" only for a failure object
            detail = s3io.read_bytes(s3, failure_location, "failure_location")[:FAILURE_EXCERPT_CHARS]
            raise AirflowException(
                f"endpoint {self.endpoint_name} failed the inference of {input_location}: failure object "
                f"{failure_location} says: {detail.decode('utf-8', 'replace')}"
            )
        if status != "success":
            raise AirflowException(
                f"endpoint {self.endpoint_name}: waiting for {output_location} ended with {status}: "
                f"{event.get('message')}"
            )
        body = s3io.read_bytes(s3, output_location, "output_location")
        try:
            boxes = decode_detections(body, class_map=class_map_param(self.class_map), image_width=image_width,
                                      image_height=image_height, min_score=min_score_param(self.min_score))
        except ValueError as exc:
            raise AirflowException(f"async output {output_location} is not object-detection JSON: {exc}") from None
        self.log.info("%s: %d boxes at min_score %s: %s", output_location, len(boxes), self.min_score,
                      ", ".join(f"{b.label} {b.score:.2f}" for b in boxes) or "none")
        return {
            "endpoint_name": self.endpoint_name,
            "input_location": input_location,
            "output_location": output_location,
            "image_width": image_width,
            "image_height": image_height,
            "min_score": min_score_param(self.min_score),
            "boxes": [box.to_dict() for box in boxes],
        }


