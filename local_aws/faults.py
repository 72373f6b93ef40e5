"""Fault rules: the emulator's way to make AWS misbehave on purpose, one rule at a time.

Rules are plain JSON (``POST /_emulator/faults``), validated here so a typo is a 400 at the
control API rather than a fault that silently never fires. A rule with ``count`` fires that many
times and then stays listed (``remaining: 0``) so a test can see it was used up.
"""

from __future__ import annotations

import itertools
import random
import threading
from dataclasses import dataclass, field, fields
from functools import cache
from typing import Any

from botocore.exceptions import UnknownServiceError
from botocore.session import get_session

# Job-level faults: matched against the resource name when the job/endpoint reaches that point.
JOB_KINDS = {
    "training_failure": "AlgorithmError: emulated training failure (local_aws fault rule)",
    "training_stopped": None,
    "labeling_failure": "ClientError: emulated labeling failure (local_aws fault rule)",
    "endpoint_failure": "ClientError: emulated endpoint creation failure (local_aws fault rule)",
    "update_endpoint_failure": "ClientError: emulated deployment failure (local_aws fault rule)",
    # The update fails and so does its rollback: the endpoint ends UpdateRollbackFailed.
    "update_rollback_failure": "ClientError: emulated deployment failure whose rollback failed too "
                               "(local_aws fault rule)",
    # CreateEndpoint or UpdateEndpoint ends with the endpoint OutOfService.
    "endpoint_out_of_service": "ClientError: emulated endpoint taken out of service (local_aws fault rule)",
}
REQUEST_KINDS = {"throttle", "invoke_error", "invoke_latency_ms", "garbage_body"}
# What a garbage_body rule answers (with HTTP 200) unless the rule gives its own body.
GARBAGE_BODY = "<html><body>502 Bad Gateway</body></html>"
INVOKE_ERROR_CODES = {"ModelError", "ThrottlingException", "ServiceUnavailable", "ValidationError",
                      "InternalFailure", "ModelNotReadyException"}
# Protocols the throttle response can be rendered in (see middleware.throttle_response).
THROTTLE_PROTOCOLS = {"json", "rest-json", "query", "ec2", "rest-xml"}


class FaultRuleError(ValueError):
    """A rule that cannot be applied as written."""


@dataclass
class FaultRule:
    """One validated rule; ``remaining`` is None for rules without a count (fire until cleared)."""

    id: int
    kind: str
    name_prefix: str = ""
    reason: str | None = None
    remaining: int | None = None
    rate: float | None = None
    service: str | None = None
    action: str | None = None
    code: str | None = None
    ms: int | None = None
    body: str | None = None
    seed: int | None = None
    fired: int = 0
    _rng: random.Random | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON view, without internals."""
        values = ((f.name, getattr(self, f.name)) for f in fields(self) if not f.name.startswith("_"))
        return {k: v for k, v in values if v is not None}


@dataclass(frozen=True)
class ServiceInfo:
    """What the throttle matcher needs to know about a botocore service."""

    name: str
    signing_name: str
    protocol: str


@cache
def service_info(name: str) -> ServiceInfo:
    """Signing name and protocol of botocore service ``name`` (e.g. "sagemaker-runtime")."""
    try:
        model = get_session().get_service_model(name)
    except UnknownServiceError as exc:
        raise FaultRuleError(f"unknown service {name!r}: use the boto3 client name") from exc
    return ServiceInfo(name=name, signing_name=model.signing_name, protocol=model.protocol)


def _opt_str(raw: dict[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if value is not None and not isinstance(value, str):
        raise FaultRuleError(f"{key} must be a string")
    return value


def _opt_int(raw: dict[str, Any], key: str, minimum: int) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise FaultRuleError(f"{key} must be an integer >= {minimum}")
    return value


def parse_rule(raw: Any, rule_id: int) -> FaultRule:
    """Validate one rule body; raises FaultRuleError naming the offending field."""
    if not isinstance(raw, dict):
        raise FaultRuleError("a fault rule is a JSON object")
    kind = raw.get("kind")
    allowed = {"kind", "name_prefix", "count"}
    rule = FaultRule(id=rule_id, kind=str(kind))
    rule.name_prefix = _opt_str(raw, "name_prefix") or ""
    rule.remaining = _opt_int(raw, "count", 1)
    if kind in JOB_KINDS:
        allowed |= {"reason"}
        rule.reason = _opt_str(raw, "reason") or JOB_KINDS[kind]
    elif kind == "throttle":
        allowed |= {"service", "action", "code"}
        service = _opt_str(raw, "service")
        if not service:
            raise FaultRuleError("throttle needs service (a boto3 client name, e.g. 'sagemaker')")
        info = service_info(service)
        if info.protocol not in THROTTLE_PROTOCOLS:
            raise FaultRuleError(f"throttling {service} ({info.protocol} protocol) is not emulated")
        rule.service, rule.action, rule.code = service, _opt_str(raw, "action"), _opt_str(raw, "code")
        if rule.remaining is None:
            rule.remaining = 1
    elif kind in ("invoke_error", "garbage_body"):
        # garbage_body: InvokeEndpoint answers HTTP 200 with `body` (default GARBAGE_BODY), a hostile or
        # broken endpoint that a load test must not count as healthy.
        if kind == "invoke_error":
            allowed |= {"code", "rate", "seed", "reason"}
            code = raw.get("code")
            if code not in INVOKE_ERROR_CODES:
                raise FaultRuleError(f"invoke_error code must be one of {sorted(INVOKE_ERROR_CODES)}")
            rule.code, rule.reason = code, _opt_str(raw, "reason")
        else:
            allowed |= {"body", "rate", "seed"}
            rule.body = _opt_str(raw, "body")
            if rule.body is None:
                rule.body = GARBAGE_BODY
        rate = raw.get("rate")
        if rate is not None:
            if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate <= 1:
                raise FaultRuleError("rate must be a number in (0, 1]")
            if rule.remaining is not None:
                raise FaultRuleError("give count or rate, not both")
            rule.rate = float(rate)
            rule.seed = _opt_int(raw, "seed", 0) or 0
            rule._rng = random.Random(rule.seed)  # seeded: the same run fails the same calls
        elif rule.remaining is None:
            raise FaultRuleError(f"{kind} needs count or rate")
    elif kind == "invoke_latency_ms":
        rule.ms = _opt_int(raw, "ms", 0)
        if rule.ms is None:
            raise FaultRuleError("invoke_latency_ms needs ms (an integer >= 0)")
        allowed |= {"ms"}
    else:
        raise FaultRuleError(f"unknown kind {kind!r}; one of {sorted([*JOB_KINDS, *REQUEST_KINDS])}")
    unknown = set(raw) - allowed
    if unknown:
        raise FaultRuleError(f"unexpected field(s) for {kind}: {sorted(unknown)}")
    return rule


class FaultBook:
    """Thread-safe rule store. Rules match in the order they were added."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._ids = itertools.count(1)
        # Hot-path shortcut: the load test hits the endpoint with no rules set.
        self.has_request_rules = False

    def add(self, raw: Any) -> FaultRule:
        """Validate and store a rule (raises FaultRuleError)."""
        with self._lock:
            rule = parse_rule(raw, next(self._ids))
            self._rules.append(rule)
            self.has_request_rules = any(r.kind in REQUEST_KINDS for r in self._rules)
            return rule

    def clear(self) -> None:
        """Drop every rule."""
        with self._lock:
            self._rules.clear()
            self.has_request_rules = False

    def rules(self) -> list[dict[str, Any]]:
        """JSON view of all rules, used-up ones included."""
        with self._lock:
            return [r.to_dict() for r in self._rules]

    def take(self, kind: str, name: str) -> FaultRule | None:
        """The first live ``kind`` rule whose name_prefix matches ``name``, consuming one use."""
        with self._lock:
            for rule in self._rules:
                if rule.kind == kind and name.startswith(rule.name_prefix) and self._fire(rule):
                    return rule
        return None

    def latency_ms(self, endpoint_name: str) -> int:
        """Total injected latency for one invocation of ``endpoint_name``."""
        with self._lock:
            total = 0
            for rule in self._rules:
                if rule.kind == "invoke_latency_ms" and endpoint_name.startswith(rule.name_prefix):
                    if self._fire(rule):
                        total += rule.ms or 0
            return total

    def throttle_rules(self) -> list[FaultRule]:
        """Live throttle rules (snapshot)."""
        with self._lock:
            return [r for r in self._rules if r.kind == "throttle" and r.remaining]

    def take_rule(self, rule: FaultRule) -> bool:
        """Consume one use of a specific rule, if it has one left."""
        with self._lock:
            return self._fire(rule)

    @staticmethod
    def _fire(rule: FaultRule) -> bool:
        # Caller holds the lock. Rate rules roll their own seeded dice.
        if rule.rate is not None:
            assert rule._rng is not None
            if rule._rng.random() >= rule.rate:
                return False
        elif rule.remaining is not None:
            if rule.remaining <= 0:
                return False
            rule.remaining -= 1
        rule.fired += 1
        return True
