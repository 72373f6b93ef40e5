"""WSGI middleware in front of moto's app: control API, throttle faults, SageMaker invocations.

Order per request: ``/_emulator/*`` is ours; then live throttle rules (only then is the request
parsed to find its service and action); then sagemaker-runtime invocations; everything else
goes to moto untouched.
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any
from xml.sax.saxutils import escape

from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.wsgi import get_input_stream

from . import patching, runtime, strict
from .extension import DURATION_KINDS, Extension
from .faults import FaultRule, FaultRuleError, service_info

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

# Default throttling error per protocol: the codes botocore's retry handler treats as throttling.
THROTTLE_CODES = {"json": "ThrottlingException", "rest-json": "ThrottlingException",
                  "query": "Throttling", "ec2": "RequestLimitExceeded", "rest-xml": "SlowDown"}


def _reply(start_response: StartResponse, status: int, headers: list[tuple[str, str]], body: bytes
           ) -> list[bytes]:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Unknown"
    start_response(f"{status} {phrase}", [*headers, ("Content-Length", str(len(body)))])
    return [body]


def _json(start_response: StartResponse, status: int, payload: Any) -> list[bytes]:
    body = json.dumps(payload, default=str, indent=1).encode()
    return _reply(start_response, status, [("Content-Type", "application/json")], body)


def throttle_response(protocol: str, code: str | None) -> runtime.Reply:
    """A throttling error in the wire format of ``protocol``, so botocore parses its code."""
    code = code or THROTTLE_CODES[protocol]
    message = "Rate exceeded (local_aws throttle fault rule)"
    request_id = str(uuid.uuid4())
    if protocol in ("json", "rest-json"):
        content_type = "application/x-amz-json-1.1" if protocol == "json" else "application/json"
        body = json.dumps({"__type": code, "message": message}).encode()
        return 400, [("Content-Type", content_type), ("x-amzn-ErrorType", code),
                     ("x-amzn-RequestId", request_id)], body
    if protocol == "query":
        xml = (f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message>"
               f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>")
        return 400, [("Content-Type", "text/xml")], xml.encode()
    if protocol == "ec2":
        xml = (f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors>"
               f"<RequestID>{request_id}</RequestID></Response>")
        return 503, [("Content-Type", "text/xml")], xml.encode()
    xml = f"<Error><Code>{code}</Code><Message>{message}</Message><RequestId>{request_id}</RequestId></Error>"
    return 503, [("Content-Type", "application/xml"), ("x-amz-request-id", request_id)], xml.encode()


def request_headers(environ: dict[str, Any]) -> dict[str, str]:
    """A WSGI request's headers, lower-case names to values (Content-Type / -Length included when set)."""
    headers = {key[5:].replace("_", "-").lower(): value for key, value in environ.items()
               if key.startswith("HTTP_")}
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):  # WSGI keeps these two out of HTTP_*
        if environ.get(key):
            headers[key.replace("_", "-").lower()] = environ[key]
    return headers


def signed_for_s3(environ: dict[str, Any]) -> bool:
    """Whether a request is SigV4-signed for S3: in its Authorization header, or presigned (the
    credential scope ``<key>/<date>/<region>/s3/aws4_request`` in the ``X-Amz-Credential`` query
    parameter, Amazon S3 API Reference, "Authenticating Requests: Using Query Parameters")."""
    if "s3/aws4_request" in environ.get("HTTP_AUTHORIZATION", ""):
        return True
    query = environ.get("QUERY_STRING", "")
    if "X-Amz-Credential" not in query:
        return False
    from urllib.parse import parse_qs

    credentials = parse_qs(query, keep_blank_values=True).get("X-Amz-Credential", [])
    return any(c.split("/")[3:] == ["s3", "aws4_request"] for c in credentials)


# Amazon S3 API Reference, "Authenticating Requests: Using Query Parameters (AWS Signature Version
# 4)": X-Amz-Expires is 1 to 604800 seconds (7 days), and S3 refuses the URL once X-Amz-Date plus
# X-Amz-Expires has passed ("Request has expired"). Presigned URLs expire on the wall clock.
PRESIGN_MAX_SECONDS = 7 * 24 * 3600


def presigned_expiry_error(environ: dict[str, Any], now: float | None = None) -> runtime.Reply | None:
    """S3's answer to a presigned (query-string SigV4) request whose lifetime is invalid or over."""
    import time
    from calendar import timegm
    from urllib.parse import parse_qsl

    query = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
    if "X-Amz-Credential" not in query:
        return None
    request_id = str(uuid.uuid4())

    def error(status: int, code: str, message: str, extra: str = "") -> runtime.Reply:
        xml = (f"<Error><Code>{code}</Code><Message>{escape(message)}</Message>{extra}"
               f"<RequestId>{request_id}</RequestId></Error>")
        return status, [("Content-Type", "application/xml"), ("x-amz-request-id", request_id)], xml.encode()

    try:
        lifetime = int(query.get("X-Amz-Expires", ""))
    except ValueError:
        return error(400, "AuthorizationQueryParametersError", "X-Amz-Expires should be a number")
    if lifetime < 0:
        return error(400, "AuthorizationQueryParametersError", "X-Amz-Expires must be non-negative")
    if lifetime > PRESIGN_MAX_SECONDS:
        return error(400, "AuthorizationQueryParametersError",
                     f"X-Amz-Expires must be less than a week (in seconds) that is {PRESIGN_MAX_SECONDS}")
    try:
        signed = timegm(time.strptime(query.get("X-Amz-Date", ""), "%Y%m%dT%H%M%SZ"))
    except ValueError:
        return error(400, "AuthorizationQueryParametersError",
                     "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"")
    now = time.time() if now is None else now
    if now > signed + lifetime:
        expired = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(signed + lifetime))
        server = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
        return error(403, "AccessDenied", "Request has expired",
                     f"<X-Amz-Expires>{lifetime}</X-Amz-Expires><Expires>{expired}</Expires>"
                     f"<ServerTime>{server}</ServerTime>")
    return None


def _operation(service: str, environ: dict[str, Any], body: bytes) -> str | None:
    """The operation a request calls on ``service`` (moto's own router), or None if not that service."""
    from moto.core.request import Request
    from moto.core.routing import get_service_router

    probe = dict(environ)
    probe["wsgi.input"] = io.BytesIO(body)
    try:
        operation, _ = get_service_router(service).match(Request(probe))
    except (NotFound, NotImplementedError):
        return None
    return str(operation.name)


def _read_body(environ: dict[str, Any]) -> bytes:
    """The request body; ``wsgi.input`` is replaced so that whoever comes next reads it again."""
    body = get_input_stream(environ).read()
    environ["wsgi.input"] = io.BytesIO(body)
    return body


class EmulatorMiddleware:
    """Wraps moto's DomainDispatcherApplication; see the module docstring for the order."""

    def __init__(self, app: WSGIApp, ext: Extension, reset: Callable[[], None],
                 set_transition_seconds: Callable[[float], None]) -> None:
        self.app = app
        self.ext = ext
        self.reset = reset
        self.set_transition_seconds = set_transition_seconds

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_emulator/"):
            return self._control(environ, start_response, path[len("/_emulator/"):].strip("/"))
        body: bytes | None = None
        if self.ext.faults.has_request_rules and self.ext.faults.throttle_rules():
            body = _read_body(environ)
            throttled = self._throttle(environ, body)
            if throttled is not None:
                return _reply(start_response, *throttled)
        target = environ.get("HTTP_X_AMZ_TARGET")
        if target:
            body = _read_body(environ) if body is None else body
            refused = self._strict_json(target, body)
            if refused is not None:
                return _reply(start_response, *refused)
        elif signed_for_s3(environ):
            body = _read_body(environ) if body is None else body
            refused = presigned_expiry_error(environ) or self._strict_s3(environ, body)
            if refused is not None:
                return _reply(start_response, *refused)
        match = runtime.INVOKE_PATH.match(path)
        if match and environ.get("REQUEST_METHOD") == "POST":
            ident = runtime.identify(environ)
            if ident.signing_name in (None, "sagemaker"):
                body = _read_body(environ) if body is None else body
                name, kind = match.groups()
                refused = self._strict_invoke(environ, name, kind, body)
                if refused is not None:
                    return _reply(start_response, *refused)
                reply = (runtime.invoke(self.ext, ident, name, environ, body) if kind == "invocations"
                         else runtime.invoke_async(self.ext, ident, name, environ))
                if reply is not None:
                    return _reply(start_response, *reply)
                environ["wsgi.input"] = io.BytesIO(body)
        with patching.serving():  # moto's response is built inside this call
            return self.app(environ, start_response)

    # -- strict model validation (local_aws/strict.py) --------------------------------------
    def _strict_json(self, target: str, body: bytes) -> runtime.Reply | None:
        """The service's validation error (strict.ERROR_CODES) for a JSON request that breaks the model."""
        checked = strict.check_json_request(target, body)
        if checked is None or not checked[2]:
            return None
        service, _operation, found = checked
        self.ext.counters["strict_refused"] += 1
        types = [v for v in found if v.kind == "type"]
        code = "SerializationException" if types else strict.ERROR_CODES.get(service, "ValidationException")
        text = (f"Unexpected value at '{types[0].path}': {types[0].constraint}" if types
                else strict.message(found))
        payload = json.dumps({"__type": code, "message": text}).encode()
        return 400, [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-ErrorType", code),
                     ("x-amzn-RequestId", str(uuid.uuid4()))], payload

    def _strict_invoke(self, environ: dict[str, Any], name: str, kind: str, body: bytes
                       ) -> runtime.Reply | None:
        """sagemaker-runtime's ValidationError for InvokeEndpoint(Async) URI/header/body members."""
        from urllib.parse import unquote

        operation = "InvokeEndpoint" if kind == "invocations" else "InvokeEndpointAsync"
        params = strict.rest_json_params("sagemaker-runtime", operation, {"EndpointName": unquote(name)},
                                         request_headers(environ), body)
        found = strict.violations("sagemaker-runtime", operation, params)
        if not found:
            return None
        self.ext.counters["strict_refused"] += 1
        return runtime.error("ValidationError", strict.message(found))

    def _strict_s3(self, environ: dict[str, Any], body: bytes) -> runtime.Reply | None:
        """S3 (rest-xml): the URI labels, headers and query string against the model.

        The XML payload (DeleteObjects' Delete, PutBucketCors' CORSConfiguration) is not decoded.
        S3 answers a bad argument with ``InvalidArgument`` (400) and ``ArgumentName`` /
        ``ArgumentValue``, a bad storage class with ``InvalidStorageClass`` (400) (S3 API Reference,
        "Error responses", List of error codes: docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html).
        """
        from urllib.parse import parse_qsl

        from moto.core.request import Request
        from moto.core.routing import get_service_router

        probe = dict(environ)
        probe["wsgi.input"] = io.BytesIO(body)
        try:
            operation, uri = get_service_router("s3").match(Request(probe))
        except (NotFound, NotImplementedError, MethodNotAllowed):
            return None
        name = str(operation.name)
        if name not in strict.service_model("s3").operation_names:
            return None
        query = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        params, payload = strict.rest_request_params("s3", name, uri, request_headers(environ), query)
        found = strict.violations("s3", name, params, unchecked=payload if body else frozenset())
        if not found:
            return None
        self.ext.counters["strict_refused"] += 1
        first = found[0]
        request_id = str(uuid.uuid4())
        value = "" if first.value is None else str(first.value)
        code = "InvalidStorageClass" if first.path == "storageClass" else "InvalidArgument"
        xml = (f"<Error><Code>{code}</Code>"
               f"<Message>{escape(strict.message(found))}</Message>"
               f"<ArgumentName>{escape(first.path)}</ArgumentName><ArgumentValue>{escape(value)}</ArgumentValue>"
               f"<RequestId>{request_id}</RequestId></Error>")
        return 400, [("Content-Type", "application/xml"), ("x-amz-request-id", request_id)], xml.encode()

    # -- faults ---------------------------------------------------------------------------
    def _throttle(self, environ: dict[str, Any], body: bytes) -> runtime.Reply | None:
        signing = runtime.identify(environ).signing_name
        for rule in self.ext.faults.throttle_rules():
            info = service_info(rule.service or "")
            if signing != info.signing_name:
                continue
            operation = _operation(info.name, environ, body)
            if operation is None or (rule.action and rule.action != operation):
                continue
            if self.ext.faults.take_rule(rule):
                self.ext.counters["throttled"] += 1
                return throttle_response(info.protocol, rule.code)
        return None

    # -- control API ----------------------------------------------------------------------
    def _control(self, environ: dict[str, Any], start_response: StartResponse, route: str
                 ) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        try:
            payload = json.loads(get_input_stream(environ).read() or b"null")
        except ValueError:
            return _json(start_response, 400, {"error": "request body is not JSON"})
        handlers: dict[tuple[str, str], Callable[[Any], tuple[int, Any]]] = {
            ("GET", "health"): lambda _: (200, {"ok": True}),
            ("GET", "state"): lambda _: (200, self.ext.snapshot()),
            ("GET", "faults"): lambda _: (200, {"faults": self.ext.faults.rules()}),
            ("POST", "faults"): self._add_fault,
            ("DELETE", "faults"): self._clear_faults,
            ("POST", "training"): self._set_map,
            ("DELETE", "training"): self._clear_map,
            ("POST", "reset"): lambda _: (self.reset(), (200, {"reset": True}))[1],
            ("POST", "config"): self._configure,
            ("POST", "durations"): self._set_duration,
            ("DELETE", "durations"): self._clear_durations,
        }
        handler = handlers.get((method, route))
        if handler is None:
            known = sorted({r for _, r in handlers})
            status = 405 if route in known else 404
            return _json(start_response, status, {"error": f"no {method} /_emulator/{route}",
                                                  "routes": [f"{m} /_emulator/{r}" for m, r in handlers]})
        status, result = handler(payload)
        return _json(start_response, status, result)

    def _clear_faults(self, _payload: Any) -> tuple[int, Any]:
        self.ext.faults.clear()
        return 200, {"faults": []}

    def _add_fault(self, payload: Any) -> tuple[int, Any]:
        try:
            rule: FaultRule = self.ext.faults.add(payload)
        except FaultRuleError as exc:
            return 400, {"error": str(exc)}
        return 201, {"rule": rule.to_dict()}

    def _set_map(self, payload: Any) -> tuple[int, Any]:
        if not isinstance(payload, dict):
            return 400, {"error": 'expected {"name_prefix": str, "map": number in [0, 1]}'}
        prefix, value = payload.get("name_prefix", ""), payload.get("map")
        if not isinstance(prefix, str) or isinstance(value, bool) or not isinstance(value, int | float) \
                or not 0 <= value <= 1:
            return 400, {"error": 'expected {"name_prefix": str, "map": number in [0, 1]}'}
        unknown = set(payload) - {"name_prefix", "map"}
        if unknown:
            return 400, {"error": f"unexpected field(s): {sorted(unknown)}"}
        with self.ext.lock:
            self.ext.map_rules.append((prefix, float(value)))
        return 201, {"training_map": [{"name_prefix": p, "map": v} for p, v in self.ext.map_rules]}

    def _configure(self, payload: Any) -> tuple[int, Any]:
        usage = ('expected {"transition_seconds": number >= 0} and/or {"time_scale": number > 0 or null} '
                 'and/or {"missing_key_status": 403 or 404}')
        if not isinstance(payload, dict) or not payload or \
                set(payload) - {"transition_seconds", "time_scale", "missing_key_status"}:
            return 400, {"error": usage}
        if "missing_key_status" in payload and (isinstance(payload["missing_key_status"], bool)
                                                or payload["missing_key_status"] not in (403, 404)):
            return 400, {"error": usage}
        seconds, scale = payload.get("transition_seconds"), payload.get("time_scale")
        if "transition_seconds" in payload and (isinstance(seconds, bool) or not isinstance(seconds, int | float)
                                                or seconds < 0):
            return 400, {"error": usage}
        if scale is not None and (isinstance(scale, bool) or not isinstance(scale, int | float) or scale <= 0):
            return 400, {"error": usage}
        if isinstance(seconds, int | float):
            self.set_transition_seconds(float(seconds))
        if "time_scale" in payload:
            self.ext.set_time_scale(scale)
        if "missing_key_status" in payload:
            with self.ext.lock:
                self.ext.missing_key_status = int(payload["missing_key_status"])
        return 200, {"transition_seconds": self.ext.transition_seconds, "time_scale": self.ext.time_scale,
                     "missing_key_status": self.ext.missing_key_status}

    def _set_duration(self, payload: Any) -> tuple[int, Any]:
        usage = f'expected {{"kind": one of {list(DURATION_KINDS)}, "name_prefix": str, "seconds": number > 0}}'
        if not isinstance(payload, dict) or set(payload) - {"kind", "name_prefix", "seconds"}:
            return 400, {"error": usage}
        kind, prefix, seconds = payload.get("kind"), payload.get("name_prefix", ""), payload.get("seconds")
        if kind not in DURATION_KINDS or not isinstance(prefix, str) or isinstance(seconds, bool) \
                or not isinstance(seconds, int | float) or seconds <= 0:
            return 400, {"error": usage}
        with self.ext.lock:
            self.ext.duration_rules.append((kind, prefix, float(seconds)))
            rules = [{"kind": k, "name_prefix": p, "seconds": v} for k, p, v in self.ext.duration_rules]
        return 201, {"durations": rules}

    def _clear_durations(self, _payload: Any) -> tuple[int, Any]:
        with self.ext.lock:
            self.ext.duration_rules.clear()
        return 200, {"durations": []}

    def _clear_map(self, _payload: Any) -> tuple[int, Any]:
        with self.ext.lock:
            self.ext.map_rules.clear()
        return 200, {"training_map": []}
