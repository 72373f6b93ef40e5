"""The IAM policies in include/iam/: valid, least-privilege, and covering every AWS call the package makes.

The key test scans the code itself (``plugins/sagemaker_vision/**/*.py`` and ``dags/*.py``) with
``ast`` for boto3 calls, adds what the provider operators used there call, maps each operation to
its IAM action(s) through botocore's service models, and checks the Airflow policy allows them
all. New code is picked up without touching this file; a missing action fails with its call sites.
Run with ``-s`` to see the discovered calls.
"""

from __future__ import annotations

import ast
import copy
import hashlib
import importlib
import importlib.util
import json
import re
import string
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import boto3
import pytest

ROOT = Path(__file__).resolve().parents[2]
IAM_DIR = ROOT / "include" / "iam"
PACKAGE_DIR = ROOT / "plugins" / "sagemaker_vision"
DAGS_DIR = ROOT / "dags"
PROVIDER_WAITERS = Path(importlib.import_module("airflow.providers.amazon.aws.waiters").__file__).parent
AIRFLOW_POLICY = "airflow-role-policy.json"
EXECUTION_POLICY = "sagemaker-execution-role-policy.json"
TRUST_POLICY = "sagemaker-execution-role-trust.json"
IDENTITY_POLICIES = (AIRFLOW_POLICY, EXECUTION_POLICY)
PLACEHOLDER_RE = re.compile(r"\$\{([A-Za-z][A-Za-z0-9]*)\}")

# boto3 client name -> IAM service prefix. sagemaker-runtime's actions live under "sagemaker".
SERVICE_PREFIX = {
    "s3": "s3",
    "sagemaker": "sagemaker",
    "sagemaker-runtime": "sagemaker",
    "cloudwatch": "cloudwatch",
    "application-autoscaling": "application-autoscaling",
    "logs": "logs",
    "iam": "iam",
    "sts": "sts",
}

# S3 operations whose IAM action is not "s3:<Operation>" (Service Authorization Reference, Amazon S3).
# Any S3 operation not listed here maps to "s3:<Operation>" (GetBucketLocation, PutObjectTagging, ...).
S3_ACTIONS: dict[str, tuple[str, ...]] = {
    "ListObjectsV2": ("s3:ListBucket",),
    "ListObjects": ("s3:ListBucket",),
    "HeadBucket": ("s3:ListBucket",),
    "HeadObject": ("s3:GetObject",),
    "GetObject": ("s3:GetObject",),
    "CopyObject": ("s3:GetObject", "s3:PutObject"),  # read the source, write the destination
    "DeleteObjects": ("s3:DeleteObject",),
    "CreateMultipartUpload": ("s3:PutObject",),
    "UploadPart": ("s3:PutObject",),
    "UploadPartCopy": ("s3:GetObject", "s3:PutObject"),
    "CompleteMultipartUpload": ("s3:PutObject",),
    "ListMultipartUploads": ("s3:ListBucketMultipartUploads",),
    "ListParts": ("s3:ListMultipartUploadParts",),
    "ListObjectVersions": ("s3:ListBucketVersions",),
    "ListBuckets": ("s3:ListAllMyBuckets",),
    # The Service Authorization Reference spells these two in capitals.
    "GetBucketCors": ("s3:GetBucketCORS",),
    "PutBucketCors": ("s3:PutBucketCORS",),
}
# Other operations whose IAM action differs from "<prefix>:<Operation>".
OTHER_ACTIONS: dict[tuple[str, str], tuple[str, ...]] = {
    # AWS authorises the streaming variant with the plain InvokeEndpoint action.
    ("sagemaker-runtime", "InvokeEndpointWithResponseStream"): ("sagemaker:InvokeEndpoint",),
}
# Operations that need no permission at all.
NO_PERMISSION = {("sts", "GetCallerIdentity")}
# Extra actions an operation needs besides its own (IAM "dependent actions" and service docs).
IMPLIED: dict[tuple[str, str], tuple[str, ...]] = {
    # RoleArn / ExecutionRoleArn in the request is a PassRole; Tags in a Create* request need AddTags
    # (sagemaker_vision.core.requests.tags() puts tags on everything it creates).
    ("sagemaker", "CreateTrainingJob"): ("iam:PassRole", "sagemaker:AddTags"),
    ("sagemaker", "CreateModel"): ("iam:PassRole", "sagemaker:AddTags"),
    ("sagemaker", "CreateLabelingJob"): ("iam:PassRole", "sagemaker:AddTags"),
    ("sagemaker", "CreateEndpointConfig"): ("sagemaker:AddTags",),
    ("sagemaker", "CreateEndpoint"): ("sagemaker:AddTags",),
    # Application Auto Scaling user guide, "Permissions required for API actions on target services":
    ("application-autoscaling", "RegisterScalableTarget"): (
        "sagemaker:DescribeEndpoint", "sagemaker:UpdateEndpointWeightsAndCapacities", "iam:CreateServiceLinkedRole",
    ),
    ("application-autoscaling", "PutScalingPolicy"): ("cloudwatch:DescribeAlarms", "cloudwatch:PutMetricAlarm"),
    ("application-autoscaling", "DeleteScalingPolicy"): ("cloudwatch:DescribeAlarms", "cloudwatch:DeleteAlarms"),
}
# s3transfer's managed transfers: the operations each may send (small objects in one request,
# large ones in parts; a failed multipart transfer is aborted).
_MULTIPART = ("CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload", "AbortMultipartUpload")
MANAGED_TRANSFERS: dict[str, tuple[str, ...]] = {
    "upload": ("PutObject", *_MULTIPART),
    "download": ("HeadObject", "GetObject"),
    "copy": ("HeadObject", "CopyObject", "CreateMultipartUpload", "UploadPartCopy", "CompleteMultipartUpload",
             "AbortMultipartUpload"),
}
# Method names that are a managed transfer on an S3 client or a TransferManager. The short names
# (upload/download/copy) also name plain Python methods (dict.copy()), so they count only with
# the three or more arguments a transfer takes (fileobj or source, bucket, key).
TRANSFER_METHODS = {
    "upload_file": "upload", "upload_fileobj": "upload", "download_file": "download",
    "download_fileobj": "download", "upload": "upload", "download": "download", "copy": "copy",
}
SHORT_TRANSFER_METHODS = {"upload", "download", "copy"}
# When a method name exists in several services and the code's call is really one of them, name it
# here: {("module/relative/path.py", "method_name"): "service"}. Unresolved ambiguities require all.
RESOLVE_AMBIGUOUS: dict[tuple[str, str], str] = {}

# What the provider (apache-airflow-providers-amazon 9.39.0) operators, sensors and triggers used by
# the code call, read from their source. Hooks need no entry: the scan reads their source itself
# (see hook_method_ops). Base classes have no calls of their own: the subclass's are scanned.
_PROVIDER = "airflow.providers.amazon.aws"
PROVIDER_CALLS: dict[str, tuple[tuple[str, str], ...]] = {
    # operators/sagemaker.py SageMakerTrainingOperator.execute / execute_complete, with
    # hooks/sagemaker.py SageMakerHook.create_training_job -> check_training_config -> check_s3_url
    # (S3Hook.check_for_bucket = HeadBucket, check_for_key = HeadObject, check_for_prefix =
    # ListObjectsV2), _get_unique_job_name (DescribeTrainingJob), print_log (describe_training_job_with_log:
    # logs DescribeLogStreams + GetLogEvents) and SageMakerTrigger's TrainingJobComplete waiter
    # (DescribeTrainingJob). Not listed: S3Operations (CreateBucket/PutObject), which our requests
    # never carry, and IAM GetRole from expand_role, which runs only for a role *name* (PipelineConfig
    # insists on an ARN).
    # HeadBucket is left out: ObjectDetectionTrainingOperator's hook (SageMakerVisionHook)
    # replaces check_s3_url (test_training_channel_check_sends_no_head_bucket), because IAM
    # authorises HeadBucket as s3:ListBucket with no s3:prefix, which the policy never grants.
    "SageMakerTrainingOperator": (
        ("s3", "HeadObject"), ("s3", "ListObjectsV2"),
        ("sagemaker", "DescribeTrainingJob"), ("sagemaker", "CreateTrainingJob"),
        ("logs", "DescribeLogStreams"), ("logs", "GetLogEvents"),
    ),
    # SageMakerModelOperator.execute: create_model, describe_model.
    "SageMakerModelOperator": (("sagemaker", "CreateModel"), ("sagemaker", "DescribeModel")),
    # SageMakerEndpointConfigOperator.execute: create_endpoint_config, describe_endpoint_config.
    "SageMakerEndpointConfigOperator": (
        ("sagemaker", "CreateEndpointConfig"), ("sagemaker", "DescribeEndpointConfig"),
    ),
    # SageMakerEndpointOperator.execute: create_model / create_endpoint_config when the config holds
    # "Model" / "EndpointConfig", create_endpoint (update_endpoint when it already exists),
    # endpoint_in_service waiter or SageMakerTrigger(job_type="endpoint") -> DescribeEndpoint, and
    # execute_complete: describe_endpoint + describe_endpoint_config.
    "SageMakerEndpointOperator": (
        ("sagemaker", "CreateModel"), ("sagemaker", "CreateEndpointConfig"), ("sagemaker", "CreateEndpoint"),
        ("sagemaker", "UpdateEndpoint"), ("sagemaker", "DescribeEndpoint"), ("sagemaker", "DescribeEndpointConfig"),
    ),
    "SageMakerTrigger": (("sagemaker", "DescribeTrainingJob"), ("sagemaker", "DescribeEndpoint")),
    "AwsBaseOperator": (),
    "AwsBaseSensor": (),
    "AwsBaseWaiterTrigger": (),  # runs the subclass's waiter, whose JSON the scan reads
}

# What the DESIGN says the modules still being written will call (deploy, scaling, async
# inference, teardown, labeling): covered now so the policy does not lag behind the code. The scan
# checks their real calls once they land.
DESIGNED_CALLS: tuple[tuple[str, str], ...] = (
    ("sagemaker", "UpdateEndpoint"), ("sagemaker", "UpdateEndpointWeightsAndCapacities"),
    ("sagemaker", "DeleteEndpoint"), ("sagemaker", "DeleteEndpointConfig"), ("sagemaker", "DeleteModel"),
    ("sagemaker", "ListTags"), ("sagemaker", "AddTags"),
    ("sagemaker", "CreateLabelingJob"), ("sagemaker", "DescribeLabelingJob"), ("sagemaker", "StopLabelingJob"),
    ("sagemaker", "ListLabelingJobs"), ("sagemaker", "ListTrainingJobs"), ("sagemaker", "StopTrainingJob"),
    ("sagemaker-runtime", "InvokeEndpoint"), ("sagemaker-runtime", "InvokeEndpointAsync"),
    ("cloudwatch", "PutMetricAlarm"), ("cloudwatch", "DeleteAlarms"), ("cloudwatch", "DescribeAlarms"),
    ("application-autoscaling", "RegisterScalableTarget"), ("application-autoscaling", "PutScalingPolicy"),
    ("application-autoscaling", "DescribeScalableTargets"), ("application-autoscaling", "DescribeScalingPolicies"),
    ("application-autoscaling", "DeregisterScalableTarget"), ("application-autoscaling", "DeleteScalingPolicy"),
    ("logs", "GetLogEvents"), ("logs", "DescribeLogStreams"),
)

# Actions that may be granted on "Resource": "*", each with the reason (mirrored in README.md).
STAR_RESOURCE_ALLOWED: dict[str, str] = {
    "sagemaker:ListTrainingJobs": "List actions have no resource type",
    "sagemaker:ListLabelingJobs": "List actions have no resource type",
    "sagemaker:ListEndpoints": "List actions have no resource type",
    "sagemaker:ListEndpointConfigs": "List actions have no resource type",
    "sagemaker:ListModels": "List actions have no resource type",
    "application-autoscaling:DescribeScalableTargets": "Describe actions have no resource type",
    "application-autoscaling:DescribeScalingPolicies": "Describe actions have no resource type",
    "ecr:GetAuthorizationToken": "the registry login token is account-wide",
    "cloudwatch:PutMetricData": "no resource type; narrowed by the cloudwatch:namespace condition",
}


# -- discovery --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Call:
    """One AWS operation the code may send, and where the scan found it."""

    service: str
    operation: str
    where: str


@cache
def _client(service: str) -> Any:
    # Dummy credentials and region: only the service model is read, nothing is sent.
    return boto3.client(service, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


@cache
def method_index() -> dict[str, frozenset[tuple[str, str]]]:
    """boto3 method name -> {(service, operation)} over SERVICE_PREFIX's services."""
    index: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for service in SERVICE_PREFIX:
        for method, operation in _client(service).meta.method_to_api_mapping.items():
            index[method].add((service, operation))
    return {m: frozenset(v) for m, v in index.items()}


@cache
def operation_index() -> dict[str, frozenset[str]]:
    """API operation name -> services that have it."""
    index: dict[str, set[str]] = defaultdict(set)
    for service in SERVICE_PREFIX:
        for operation in _client(service).meta.service_model.operation_names:
            index[operation].add(service)
    return {op: frozenset(v) for op, v in index.items()}


@cache
def waiter_index() -> dict[str, frozenset[tuple[str, str]]]:
    """Waiter name -> {(service, operation)}: boto3's own and the provider's custom JSON waiters."""
    index: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for service in SERVICE_PREFIX:
        client = _client(service)
        for name in client.waiter_names:
            index[name].add((service, client.get_waiter(name).config.operation))
    for path in PROVIDER_WAITERS.glob("*.json"):
        if path.stem in SERVICE_PREFIX:
            for name, spec in json.loads(path.read_text())["waiters"].items():
                index[name].add((path.stem, spec["operation"]))
    return {k: frozenset(v) for k, v in index.items()}


def _const_str(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _module_names(tree: ast.AST) -> set[str]:
    """Names that are never clients: modules bound by ``import`` (``re``, ``json as j``) and regex
    patterns bound by ``X = re.compile(...)`` (``PATTERN.search(...)`` is not SageMaker's Search)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.AnnAssign) and isinstance(node.value, ast.Call):
            func = node.value.func
            if isinstance(func, ast.Attribute) and func.attr == "compile" and \
                    isinstance(func.value, ast.Name) and func.value.id == "re":
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def _provider_imports(tree: ast.AST) -> list[tuple[str, str]]:
    """(module, name) of every name imported from the amazon provider."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(_PROVIDER):
            found.extend((node.module, alias.name) for alias in node.names)
    return found


def _provider_class(module: str, name: str) -> type | None:
    obj = getattr(importlib.import_module(module), name, None)
    return obj if isinstance(obj, type) else None


def _is_aws_component(cls: type | None) -> bool:
    """Operators, sensors and triggers: the provider classes that talk to AWS on their own."""
    from airflow.sdk import BaseOperator
    from airflow.triggers.base import BaseTrigger

    return cls is not None and issubclass(cls, BaseOperator | BaseTrigger)


def _is_hook(cls: type | None) -> bool:
    from airflow.sdk import BaseHook

    return cls is not None and issubclass(cls, BaseHook)


def _candidates(method: str, rel: str) -> frozenset[tuple[str, str]]:
    found = method_index().get(method, frozenset())
    if len(found) > 1 and (rel, method) in RESOLVE_AMBIGUOUS:
        service = RESOLVE_AMBIGUOUS[(rel, method)]
        found = frozenset(c for c in found if c[0] == service)
    return found


def _calls_in(tree: ast.AST, modules: set[str], rel: str,
              hook_ops: Mapping[str, frozenset[tuple[str, str]]]) -> tuple[list[Call], set[str]]:
    """(AWS calls, names of all methods called) in a syntax tree."""
    calls: list[Call] = []
    called: set[str] = set()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        method, receiver = node.func.attr, node.func.value
        if isinstance(receiver, ast.Name) and receiver.id in modules:
            continue  # re.search(...) is not SageMaker's Search
        called.add(method)
        where = f"{rel}:{node.lineno}"
        first = node.args[0] if node.args else None
        found: Iterable[tuple[str, str]]
        if method == "get_paginator":
            found = _candidates(_const_str(first) or "", rel)
        elif method == "get_waiter":
            found = waiter_index().get(_const_str(first) or "", ())
        elif method == "generate_presigned_url":
            kw = {k.arg: k.value for k in node.keywords}
            found = _candidates(_const_str(first or kw.get("ClientMethod")) or "", rel)
        elif method in TRANSFER_METHODS:
            n_args = len(node.args) + len(node.keywords)
            use = method not in SHORT_TRANSFER_METHODS or n_args >= 3
            found = [("s3", op) for op in MANAGED_TRANSFERS[TRANSFER_METHODS[method]]] if use else []
        else:
            found = _candidates(method, rel)
        found = set(found)
        calls.extend(Call(service, op, where) for service, op in found)
        # A provider hook's helper (S3Hook.get_head_object_async, SageMakerHook.create_training_job)
        # sends what its source sends.
        calls.extend(Call(service, op, f"{where} (hook method {method})")
                     for service, op in hook_ops.get(method, frozenset()) - found)
    return calls, called


# AwsGenericHook.get_session -> SessionFactory.create_session builds a boto3 session (STS only when
# the connection names a role): not S3 Express's CreateSession, which shares the method name.
SESSION_METHODS = frozenset({"create_session"})
SESSION_BUILDING = frozenset({("s3", "CreateSession")})


@cache
def hook_method_ops(hook_classes: frozenset[type]) -> dict[str, frozenset[tuple[str, str]]]:
    """Method name -> operations, read from the source of provider hooks (and the hooks they build).

    Each method's own boto3 calls, closed over the methods it calls in turn (SageMakerHook's
    create_training_job -> check_training_config -> check_s3_url -> S3Hook.check_for_bucket).
    """
    classes = set(hook_classes)
    for cls in hook_classes:  # hooks a hook builds internally: those its module imports
        classes |= {v for v in vars(importlib.import_module(cls.__module__)).values()
                    if isinstance(v, type) and _is_hook(v) and v.__module__.startswith(_PROVIDER)}
    classes = {c for cls in classes for c in cls.__mro__ if c.__module__.startswith(_PROVIDER)}
    direct: dict[str, set[tuple[str, str]]] = defaultdict(set)
    edges: dict[str, set[str]] = defaultdict(set)
    for cls in sorted(classes, key=lambda c: c.__qualname__):
        source = Path(importlib.import_module(cls.__module__).__file__)
        tree = ast.parse(source.read_text(encoding="utf-8"))
        modules = _module_names(tree)
        (class_def,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls.__name__]
        for fn in class_def.body:
            if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                calls, called = _calls_in(fn, modules, cls.__name__, {})
                direct[fn.name] |= {(c.service, c.operation) for c in calls} - SESSION_BUILDING
                called -= SESSION_METHODS
                edges[fn.name] |= called
    ops = {name: set(found) for name, found in direct.items()}
    changed = True
    while changed:  # fixpoint over the call graph (recursion-safe)
        changed = False
        for name, callees in edges.items():
            before = len(ops[name])
            for callee in callees & ops.keys():
                ops[name] |= ops[callee]
            changed |= len(ops[name]) != before
    return {name: frozenset(found) for name, found in ops.items() if found}


def scan_source(path: Path, rel: str) -> tuple[list[Call], list[str]]:
    """(calls, provider operators/sensors/triggers missing from PROVIDER_CALLS) of one Python file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    imported = [(module, name, _provider_class(module, name)) for module, name in _provider_imports(tree)]
    hooks = frozenset(cls for _, _, cls in imported if _is_hook(cls))
    calls, _ = _calls_in(tree, _module_names(tree), rel, hook_method_ops(hooks) if hooks else {})
    unmapped = []
    for module, name, cls in imported:
        if name in PROVIDER_CALLS:
            calls.extend(Call(service, op, f"{rel} ({name})") for service, op in PROVIDER_CALLS[name])
        elif _is_aws_component(cls):
            unmapped.append(f"{rel}: {module}.{name}")
    return calls, unmapped


def scan_waiter_json(path: Path, rel: str) -> list[Call]:
    """The operation of every waiter in one of the package's custom waiter files."""
    calls = []
    for name, spec in json.loads(path.read_text()).get("waiters", {}).items():
        for service in operation_index().get(spec["operation"], ()):
            calls.append(Call(service, spec["operation"], f"{rel} ({name})"))
    return calls


@cache
def discover(package_dir: Path = PACKAGE_DIR, dags_dir: Path = DAGS_DIR) -> tuple[list[Call], list[str]]:
    """Every AWS call of the package and its DAGs, plus provider classes the table lacks."""
    calls: list[Call] = []
    unmapped: list[str] = []
    sources = sorted(package_dir.rglob("*.py")) + sorted(dags_dir.glob("*.py"))
    for path in sources:
        rel = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
        found, missing = scan_source(path, rel)
        calls.extend(found)
        unmapped.extend(missing)
    for path in sorted(package_dir.rglob("waiters/*.json")):
        calls.extend(scan_waiter_json(path, str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)))
    return calls, unmapped


# Calls a module makes only when an operator argument asks for them: (module, operation) ->
# (operator class, keyword). They count only where a DAG or package module builds that operator
# with the keyword set to anything but a literal False (its default): S3SyncOperator deletes
# only with delete=True, which no DAG sets, so the Airflow role is granted no s3:DeleteObject.
ARGUMENT_GATED: dict[tuple[str, str], tuple[str, str]] = {
    ("plugins/sagemaker_vision/hooks/s3_transfer.py", "DeleteObjects"): ("S3SyncOperator", "delete"),
}


def keyword_uses(class_name: str, keyword: str, dirs: Iterable[Path] = (PACKAGE_DIR, DAGS_DIR)) -> list[str]:
    """Where ``class_name(...)`` is called with ``keyword`` set to anything but a literal False."""
    found = []
    for directory in dirs:
        for path in sorted(directory.rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not isinstance(node, ast.Call):
                    continue
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
                if name != class_name:
                    continue
                for kw in node.keywords:
                    if kw.arg is None or (kw.arg == keyword and not (
                            isinstance(kw.value, ast.Constant) and kw.value.value is False)):
                        found.append(f"{path.name}:{node.lineno}")
    return found


def pipeline_calls(package_dir: Path = PACKAGE_DIR, dags_dir: Path = DAGS_DIR) -> list[Call]:
    """The calls of :func:`discover` that the DAGs can make: argument-gated ones only if asked for."""
    calls, _ = discover(package_dir, dags_dir)
    kept = []
    for call in calls:
        gate = ARGUMENT_GATED.get((call.where.split(":", 1)[0], call.operation))
        if gate is None or keyword_uses(*gate, dirs=(package_dir, dags_dir)):
            kept.append(call)
    return kept


def iam_actions(service: str, operation: str) -> tuple[str, ...]:
    """The IAM actions one API operation needs, its dependent actions included."""
    if (service, operation) in NO_PERMISSION:
        return ()
    if service == "s3":
        own = S3_ACTIONS.get(operation, (f"s3:{operation}",))
    else:
        own = OTHER_ACTIONS.get((service, operation), (f"{SERVICE_PREFIX[service]}:{operation}",))
    return own + IMPLIED.get((service, operation), ())


def required_actions(calls: Iterable[Call]) -> dict[str, list[str]]:
    """IAM action -> the call sites that need it."""
    needed: dict[str, list[str]] = defaultdict(list)
    for call in calls:
        for action in iam_actions(call.service, call.operation):
            needed[action].append(f"{call.where} {call.service}.{call.operation}")
    return dict(needed)


# -- policy evaluation (enough of IAM's rules for these templates) ---------------------------
def load(name: str) -> dict[str, Any]:
    return json.loads((IAM_DIR / name).read_text())


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _wildcard(pattern: str, value: str, case_sensitive: bool = True) -> bool:
    """IAM's * and ? (no character classes, unlike fnmatch)."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, 0 if case_sensitive else re.IGNORECASE) is not None


def _conditions_hold(condition: Mapping[str, Mapping[str, Any]], context: Mapping[str, str]) -> bool:
    for operator, tests in condition.items():
        for key, expected in tests.items():
            if key not in context:  # an absent key fails every operator used here
                return False
            actual, wanted = context[key], _as_list(expected)
            if operator == "StringEquals":
                ok = actual in wanted
            elif operator in ("StringLike", "ArnLike"):
                ok = any(_wildcard(w, actual) for w in wanted)
            else:
                raise AssertionError(f"condition operator {operator} is not modelled by this test")
            if not ok:
                return False
    return True


def statement_allows(st: Mapping[str, Any], action: str, resource: str,
                     context: Mapping[str, str] | None = None) -> bool:
    if st["Effect"] != "Allow":
        return False
    # Action names are case-insensitive in IAM; ARNs are case-sensitive.
    if not any(_wildcard(a, action, case_sensitive=False) for a in _as_list(st["Action"])):
        return False
    if not any(_wildcard(r, resource) for r in _as_list(st["Resource"])):
        return False
    return _conditions_hold(st.get("Condition", {}), context or {})


def allows(policy: Mapping[str, Any], action: str, resource: str, context: Mapping[str, str] | None = None) -> bool:
    """Whether an Allow statement grants ``action`` on ``resource`` given the condition ``context``."""
    return any(statement_allows(st, action, resource, context) for st in policy["Statement"])


def granted_actions(policy: Mapping[str, Any]) -> set[str]:
    return {a for st in policy["Statement"] if st["Effect"] == "Allow" for a in _as_list(st["Action"])}


def missing_actions(policy: Mapping[str, Any], needed: Iterable[str]) -> list[str]:
    granted = granted_actions(policy)
    return sorted(a for a in needed if not any(_wildcard(g, a, case_sensitive=False) for g in granted))


def _render(name: str, values: Mapping[str, str]) -> dict[str, Any]:
    return json.loads(string.Template((IAM_DIR / name).read_text()).substitute(values))


# -- tests: documents ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", [AIRFLOW_POLICY, EXECUTION_POLICY, TRUST_POLICY])
def test_policy_is_a_valid_policy_document(name):
    doc = load(name)
    assert set(doc) == {"Version", "Statement"}, f"{name}: unexpected top-level keys {sorted(doc)}"
    assert doc["Version"] == "2012-10-17"
    assert isinstance(doc["Statement"], list) and doc["Statement"], f"{name}: Statement must be a non-empty list"
    sids = [st.get("Sid") for st in doc["Statement"]]
    assert all(sids) and len(set(sids)) == len(sids), f"{name}: every statement needs a unique Sid: {sids}"
    for st in doc["Statement"]:
        where = f"{name} {st['Sid']}"
        assert st.get("Effect") in ("Allow", "Deny"), where
        assert "NotAction" not in st and "NotResource" not in st, f"{where}: Not* inverts least privilege"
        actions = _as_list(st["Action"])
        assert actions and all(re.fullmatch(r"[a-z0-9-]+:[A-Za-z0-9]+", a) for a in actions), (where, actions)
        assert len(set(actions)) == len(actions), f"{where}: duplicate actions"
        if name == TRUST_POLICY:
            assert "Principal" in st and "Resource" not in st, where
        else:
            assert "Principal" not in st, f"{where}: identity policies have no Principal"
            resources = _as_list(st["Resource"])
            assert resources and all(r == "*" or r.startswith("arn:${Partition}:") for r in resources), where
        assert set(st) <= {"Sid", "Effect", "Action", "Resource", "Principal", "Condition"}, where


@pytest.mark.parametrize("name", [AIRFLOW_POLICY, EXECUTION_POLICY, TRUST_POLICY])
def test_no_wildcard_actions(name):
    for st in load(name)["Statement"]:
        wild = [a for a in _as_list(st["Action"]) if "*" in a or "?" in a]
        assert not wild, f"{name} {st['Sid']}: wildcard actions {wild}; list each action"


def test_star_resource_only_where_aws_requires_it():
    used: set[str] = set()
    for name in IDENTITY_POLICIES:
        for st in load(name)["Statement"]:
            resources = _as_list(st["Resource"])
            if "*" in resources:
                assert resources == ["*"], f"{name} {st['Sid']}: mixes * with ARNs"
                bad = [a for a in _as_list(st["Action"]) if a not in STAR_RESOURCE_ALLOWED]
                assert not bad, f"{name} {st['Sid']}: {bad} on Resource * (not in STAR_RESOURCE_ALLOWED)"
                used.update(_as_list(st["Action"]))
            for r in resources:
                assert r == "*" or not re.fullmatch(r"arn:\$\{Partition\}:[a-z0-9-]+:[^:]*:[^:]*:\*", r), (
                    f"{name} {st['Sid']}: {r} is a whole-service wildcard")
    stale = set(STAR_RESOURCE_ALLOWED) - used
    assert not stale, f"STAR_RESOURCE_ALLOWED lists actions no statement grants on *: {sorted(stale)}"
    readme = (IAM_DIR / "README.md").read_text()
    for action in STAR_RESOURCE_ALLOWED:
        assert action.split(":")[1] in readme, f"README.md does not explain {action} on Resource *"


def test_the_readme_names_every_s3_location_granted_outside_the_prefix():
    """include/iam/README.md matches the policies: each S3 location a policy grants beyond
    ``${Prefix}/`` (the endpoint leases, the image source) is named in the README."""
    readme = (IAM_DIR / "README.md").read_text()
    for path in sorted(IAM_DIR.glob("*-policy.json")):
        for st in json.loads(path.read_text())["Statement"]:
            for resource in _as_list(st.get("Resource", [])):
                bucket_path = resource.split(":::", 1)[1] if ":s3:::" in resource else None
                if not bucket_path or "/" not in bucket_path or bucket_path.split("/", 1)[1].startswith("${Prefix}/"):
                    continue
                stem = bucket_path.split("/", 1)[1].split("${")[0].rstrip("*") or bucket_path.split("/", 1)[0]
                assert stem in readme, f"{path.name} {st['Sid']} grants {resource}; README.md never names {stem!r}"


def test_placeholders_are_documented_and_all_substituted():
    # The README's placeholder table: one row per placeholder, "| `${Name}` | value | example |".
    rows = re.findall(r"^\| `\$\{([A-Za-z0-9]+)\}` \|", (IAM_DIR / "README.md").read_text(), re.MULTILINE)
    documented = set(rows)
    assert len(rows) == len(documented), "a placeholder is documented twice"
    used: set[str] = set()
    for path in sorted(IAM_DIR.glob("*.json")):
        names = set(PLACEHOLDER_RE.findall(path.read_text()))
        assert names, f"{path.name} has no placeholders; it cannot be account-independent"
        used |= names
        assert "$" not in PLACEHOLDER_RE.sub("", path.read_text()), f"{path.name}: malformed placeholder"
    assert used <= documented, f"undocumented placeholders: {sorted(used - documented)}"
    assert documented <= used, f"README documents unused placeholders: {sorted(documented - used)}"
    values = {name: "x" for name in used}
    for path in sorted(IAM_DIR.glob("*.json")):
        rendered = _render(path.name, values)
        assert "${" not in json.dumps(rendered)


def test_pass_role_is_limited_to_the_execution_role_and_sagemaker():
    statements = [st for st in load(AIRFLOW_POLICY)["Statement"] if "iam:PassRole" in _as_list(st["Action"])]
    assert len(statements) == 1
    (st,) = statements
    assert _as_list(st["Action"]) == ["iam:PassRole"]
    assert _as_list(st["Resource"]) == ["arn:${Partition}:iam::${Account}:role/${ExecutionRoleName}"]
    assert st["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}


def test_trust_policy_lets_only_sagemaker_of_this_account_assume_the_role():
    (st,) = load(TRUST_POLICY)["Statement"]
    assert st["Effect"] == "Allow" and st["Action"] == "sts:AssumeRole"
    assert st["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    assert st["Condition"]["StringEquals"] == {"aws:SourceAccount": "${Account}"}
    assert st["Condition"]["ArnLike"] == {"aws:SourceArn": "arn:${Partition}:sagemaker:${Region}:${Account}:*"}


# -- tests: the code's calls are covered -----------------------------------------------------
def test_every_aws_call_of_the_code_is_allowed_by_the_airflow_policy():
    _, unmapped = discover()
    calls = pipeline_calls()
    assert not unmapped, (
        "provider classes with no entry in PROVIDER_CALLS (read their source and list what they call):\n  "
        + "\n  ".join(unmapped))
    needed = required_actions(calls)
    print("\nAWS calls found in the code:")
    for call in sorted(set(calls), key=lambda c: (c.service, c.operation, c.where)):
        print(f"  {call.service}.{call.operation:<34} {call.where}")
    print("IAM actions required:", ", ".join(sorted(needed)))
    missing = missing_actions(load(AIRFLOW_POLICY), needed)
    assert not missing, "airflow-role-policy.json lacks:\n" + "\n".join(
        f"  {a}: needed by {', '.join(sorted(set(needed[a]))[:5])}" for a in missing)


def test_scan_finds_the_calls_everyone_knows_are_there():
    """Guards the scanner itself: if it went blind, the coverage test would pass vacuously."""
    found = {(c.service, c.operation) for c in discover()[0]}
    for expected in [
        ("s3", "ListObjectsV2"),           # get_paginator("list_objects_v2") in hooks/s3, hooks/s3_sync
        ("s3", "PutObject"),               # put_object in hooks/s3 and operators/load_test
        ("s3", "DeleteObjects"),           # S3SyncOperator's delete batches
        ("s3", "UploadPartCopy"),          # S3SyncOperator's TransferManager.copy for large objects
        ("sagemaker-runtime", "InvokeEndpoint"),
        ("sagemaker", "CreateTrainingJob"),  # the provider's SageMakerTrainingOperator in the DAG
        ("sagemaker", "DescribeLabelingJob"),  # waiters/sagemaker_vision.json
    ]:
        assert expected in found, f"the scan no longer finds {expected}"
    assert ("sagemaker", "Search") not in found, "re.search(...) was taken for SageMaker's Search"


def test_removing_any_required_action_from_the_policy_is_caught():
    """Every action the scan requires is load-bearing: drop one from a copy and the check names it."""
    policy = load(AIRFLOW_POLICY)
    needed = required_actions(pipeline_calls())
    assert len(needed) >= 20, sorted(needed)
    for action in sorted(needed):
        trimmed = copy.deepcopy(policy)
        for st in trimmed["Statement"]:
            st["Action"] = [a for a in _as_list(st["Action"]) if a != action]
        trimmed["Statement"] = [st for st in trimmed["Statement"] if st["Action"]]
        assert missing_actions(trimmed, needed) == [action], action


def test_scan_picks_up_new_modules(tmp_path):
    """A module that lands tomorrow is scanned without editing this test."""
    package = tmp_path / "sagemaker_vision"
    (package / "waiters").mkdir(parents=True)
    (package / "scaling.py").write_text(
        "import re\n"
        "from sagemaker_vision import aws\n\n"
        "PATTERN = re.compile('x')\n\n"
        "def scale(cfg, fh):\n"
        "    aas = aws.client('application-autoscaling')\n"
        "    aas.register_scalable_target(ServiceNamespace='sagemaker')\n"
        "    aws.client('cloudwatch').put_metric_alarm(AlarmName=cfg.name)\n"
        "    re.search('x', 'y')\n"
        "    PATTERN.search('y')\n"
        "    aws.client('s3').upload_fileobj(fh, 'b', 'k')\n"
        "    {}.copy()\n"
        "    aws.client('sagemaker').get_waiter('endpoint_deleted').wait(EndpointName='e')\n"
        "    aws.client('s3').generate_presigned_url('get_object', Params={})\n"
        "    for _ in aws.client('sagemaker').get_paginator('list_notebook_instances').paginate():\n"
        "        pass\n"
    )
    (package / "waiters" / "custom.json").write_text(json.dumps(
        {"version": 2, "waiters": {"alarm_ok": {"operation": "DescribeAlarms", "delay": 5, "maxAttempts": 3,
                                                "acceptors": []}}}))
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "teardown.py").write_text(
        "from airflow.providers.amazon.aws.operators.sagemaker import SageMakerDeleteModelOperator\n")
    calls, unmapped = discover(package, dags)
    found = {(c.service, c.operation) for c in calls}
    assert {("application-autoscaling", "RegisterScalableTarget"), ("cloudwatch", "PutMetricAlarm"),
            ("s3", "PutObject"), ("s3", "CreateMultipartUpload"), ("sagemaker", "DescribeEndpoint"),
            ("s3", "GetObject"), ("sagemaker", "ListNotebookInstances"), ("cloudwatch", "DescribeAlarms")} <= found
    assert ("sagemaker", "Search") not in found
    assert ("s3", "CopyObject") not in found, "dict.copy() is not an S3 copy"
    # A provider operator nobody has read yet must be listed, not silently trusted.
    assert unmapped == [f"{dags / 'teardown.py'}: {_PROVIDER}.operators.sagemaker.SageMakerDeleteModelOperator"]
    needed = required_actions(calls)
    assert "iam:CreateServiceLinkedRole" in needed and "sagemaker:UpdateEndpointWeightsAndCapacities" in needed
    # sagemaker:ListNotebookInstances is not granted: the check would fail on this module until it is.
    assert missing_actions(load(AIRFLOW_POLICY), needed) == ["sagemaker:ListNotebookInstances"]


def test_designed_calls_are_allowed_before_their_modules_land():
    needed = required_actions(Call(s, op, "DESIGN.md") for s, op in DESIGNED_CALLS)
    assert not missing_actions(load(AIRFLOW_POLICY), needed)


def test_operation_names_in_the_tables_exist_in_botocore():
    """A typo in a hand-written table would otherwise map to an action nobody calls."""
    tables = [*((s, op) for calls in PROVIDER_CALLS.values() for s, op in calls), *DESIGNED_CALLS, *IMPLIED,
              *OTHER_ACTIONS, *NO_PERMISSION, *(("s3", op) for op in S3_ACTIONS),
              *(("s3", op) for ops in MANAGED_TRANSFERS.values() for op in ops)]
    for service, operation in tables:
        assert operation in _client(service).meta.service_model.operation_names, (service, operation)


# -- tests: resources match what PipelineConfig really names ------------------------------------
ACCOUNT = "123456789012"
REGION = "eu-west-1"


@pytest.fixture
def cfg():
    from sagemaker_vision.core.config import PipelineConfig, RunInfo
    from sagemaker_vision.core.params import param_defaults

    params = {**param_defaults(), "bucket": "vision-prod", "image_source": "s3://camera-uploads/site-a/",
              "role_arn": f"arn:aws:iam::{ACCOUNT}:role/sagemaker-vision-execution"}
    run = RunInfo(run_id="scheduled__2026-03-02", run_after=datetime(2026, 3, 9, tzinfo=UTC),
                  data_interval_start=datetime(2026, 3, 2, tzinfo=UTC),
                  data_interval_end=datetime(2026, 3, 9, tzinfo=UTC))
    return PipelineConfig.from_params(params, run=run, region=REGION)


@pytest.fixture
def values(cfg) -> dict[str, str]:
    from sagemaker_vision.core import algorithms

    src_bucket, _, src_prefix = cfg.image_source[5:].partition("/")
    return {"Partition": "aws", "Region": REGION, "Account": ACCOUNT, "Bucket": cfg.bucket, "Prefix": cfg.prefix,
            "ImageSourceBucket": src_bucket, "ImageSourcePrefix": src_prefix, "NamePrefix": cfg.pipeline_name.lower(),
            "ExecutionRoleName": cfg.role_arn.split(":role/", 1)[1],
            "AlgorithmAccount": algorithms.OBJECT_DETECTION_ECR_ACCOUNTS[REGION]}


def _sm(kind: str, name: str) -> str:
    return f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:{kind}/{name.lower()}"


def _obj(uri: str) -> str:
    return "arn:aws:s3:::" + uri.removeprefix("s3://")


def test_airflow_policy_reaches_the_resources_the_pipeline_names(cfg, values):
    from sagemaker_vision.core.requests import PACKAGE_TAG, PACKAGE_TAG_VALUE

    policy = _render(AIRFLOW_POLICY, values)
    for action, kind, name in [
        ("sagemaker:CreateTrainingJob", "training-job", cfg.job_name),
        ("sagemaker:DescribeTrainingJob", "training-job", cfg.job_name),
        ("sagemaker:CreateLabelingJob", "labeling-job", cfg.labeling_job_name),
        ("sagemaker:CreateModel", "model", cfg.model_name),
        ("sagemaker:CreateEndpointConfig", "endpoint-config", cfg.endpoint_config_name),
        ("sagemaker:CreateEndpoint", "endpoint", cfg.endpoint_name),
        ("sagemaker:UpdateEndpoint", "endpoint", cfg.endpoint_name),
        ("sagemaker:InvokeEndpoint", "endpoint", cfg.endpoint_name),
        ("sagemaker:AddTags", "endpoint", cfg.endpoint_name),
        ("sagemaker:ListTags", "endpoint", cfg.endpoint_name),
    ]:
        assert allows(policy, action, _sm(kind, name)), (action, name)
    # Another team's resources in the same account stay out of reach.
    for action, kind in [("sagemaker:CreateTrainingJob", "training-job"), ("sagemaker:InvokeEndpoint", "endpoint"),
                         ("sagemaker:UpdateEndpoint", "endpoint")]:
        assert not allows(policy, action, _sm(kind, "fraud-model-prod")), action

    # Deletes need the package's tag on the resource.
    endpoint = _sm("endpoint", cfg.endpoint_name)
    assert allows(policy, "sagemaker:DeleteEndpoint", endpoint, {f"aws:ResourceTag/{PACKAGE_TAG}": PACKAGE_TAG_VALUE})
    assert not allows(policy, "sagemaker:DeleteEndpoint", endpoint, {f"aws:ResourceTag/{PACKAGE_TAG}": "someone"})
    assert not allows(policy, "sagemaker:DeleteEndpoint", endpoint)

    # PassRole: this role, to SageMaker only.
    assert allows(policy, "iam:PassRole", cfg.role_arn, {"iam:PassedToService": "sagemaker.amazonaws.com"})
    assert not allows(policy, "iam:PassRole", cfg.role_arn, {"iam:PassedToService": "ec2.amazonaws.com"})
    assert not allows(policy, "iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/admin",
                      {"iam:PassedToService": "sagemaker.amazonaws.com"})

    # S3: everything under the prefix, nothing beside it; the source is read-only.
    for uri in (cfg.raw_prefix + "shape_000.jpg", cfg.labeled_manifest_uri, cfg.train_manifest_uri,
                cfg.report_prefix + "report.json"):
        assert allows(policy, "s3:PutObject", _obj(uri)) and allows(policy, "s3:GetObject", _obj(uri)), uri
    assert not allows(policy, "s3:DeleteObject", _obj(cfg.raw_prefix + "old.jpg"))  # nothing deletes
    assert not allows(policy, "s3:PutObject", f"arn:aws:s3:::{cfg.bucket}/billing/export.csv")
    assert not allows(policy, "s3:GetObject", "arn:aws:s3:::another-bucket/object-detection/x")
    assert allows(policy, "s3:ListBucket", f"arn:aws:s3:::{cfg.bucket}", {"s3:prefix": cfg.prefix + "/raw/"})
    for outside in ({}, {"s3:prefix": ""}, {"s3:prefix": "billing/"}):  # HeadBucket, the whole bucket
        assert not allows(policy, "s3:ListBucket", f"arn:aws:s3:::{cfg.bucket}", outside), outside
    # Ground Truth's CORS rule goes on the bucket holding the synced images (cfg.raw_prefix), only that one.
    for action in ("s3:GetBucketCORS", "s3:PutBucketCORS"):
        assert allows(policy, action, f"arn:aws:s3:::{cfg.bucket}"), action
        assert not allows(policy, action, "arn:aws:s3:::another-bucket"), action
    assert allows(policy, "s3:GetObject", _obj(cfg.image_source + "cam1/0001.jpg"))
    assert not allows(policy, "s3:PutObject", _obj(cfg.image_source + "cam1/0001.jpg"))
    assert allows(policy, "s3:ListBucket", "arn:aws:s3:::camera-uploads", {"s3:prefix": "site-a/"})
    assert not allows(policy, "s3:ListBucket", "arn:aws:s3:::camera-uploads", {"s3:prefix": "site-b/"})

    # Training logs of this pipeline's jobs.
    stream = (f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/sagemaker/TrainingJobs:"
              f"log-stream:{cfg.job_name}/algo-1-1700000000")
    assert allows(policy, "logs:GetLogEvents", stream)

    # Auto scaling writes are for SageMaker targets only.
    target = f"arn:aws:application-autoscaling:{REGION}:{ACCOUNT}:scalable-target/0123abcd"
    assert allows(policy, "application-autoscaling:RegisterScalableTarget", target,
                  {"application-autoscaling:service-namespace": "sagemaker"})
    assert not allows(policy, "application-autoscaling:RegisterScalableTarget", target,
                      {"application-autoscaling:service-namespace": "ecs"})
    alarm = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:TargetTracking-endpoint/{cfg.endpoint_name}/variant/x"
    assert allows(policy, "cloudwatch:PutMetricAlarm", alarm)
    # The alarms the package names itself: blue/green rollback and async scale-from-zero.
    from sagemaker_vision.core.naming import backlog_alarm_name, rollback_alarm_names

    for name in [*rollback_alarm_names(cfg.endpoint_name), backlog_alarm_name(cfg.endpoint_name)]:
        arn = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}"
        assert allows(policy, "cloudwatch:PutMetricAlarm", arn) and allows(policy, "cloudwatch:DeleteAlarms", arn)
    assert not allows(policy, "cloudwatch:DeleteAlarms", f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:billing")


def test_execution_role_reads_inputs_writes_outputs_and_nothing_else(cfg, values):
    from sagemaker_vision.core import algorithms

    policy = _render(EXECUTION_POLICY, values)
    from local_aws.runtime import async_result_uris
    from sagemaker_vision.core import labeling_job
    from sagemaker_vision.core.requests import model_artifact_uri

    for uri in (cfg.train_manifest_uri, cfg.validation_manifest_uri, cfg.raw_prefix + "shape_000.jpg",
                model_artifact_uri(cfg)):
        assert allows(policy, "s3:GetObject", _obj(uri)), uri
    assert allows(policy, "s3:PutObject", _obj(model_artifact_uri(cfg)))
    assert allows(policy, "s3:PutObject", _obj(
        labeling_job.output_manifest_uri(cfg.ground_truth_output_prefix, cfg.labeling_job_name)))
    for uri in async_result_uris(cfg.async_output_prefix, cfg.async_failure_prefix, "0f6c"):  # async results
        assert allows(policy, "s3:PutObject", _obj(uri)), uri
    # SageMaker must never overwrite the images or the manifests it trains on.
    assert not allows(policy, "s3:PutObject", _obj(cfg.raw_prefix + "shape_000.jpg"))
    assert not allows(policy, "s3:DeleteObject", _obj(cfg.train_manifest_uri))
    assert allows(policy, "s3:ListBucket", f"arn:aws:s3:::{cfg.bucket}", {"s3:prefix": f"{cfg.prefix}/runs/"})
    assert not allows(policy, "s3:ListBucket", f"arn:aws:s3:::{cfg.bucket}", {"s3:prefix": "billing/"})

    # The repository of the image the training request names.
    registry, _, repository = cfg.image_uri.partition("/")
    repo_arn = f"arn:aws:ecr:{REGION}:{registry.split('.')[0]}:repository/{repository.split(':')[0]}"
    assert repository.startswith(algorithms.OBJECT_DETECTION_REPOSITORY)
    assert allows(policy, "ecr:BatchGetImage", repo_arn) and allows(policy, "ecr:GetDownloadUrlForLayer", repo_arn)
    assert not allows(policy, "ecr:BatchGetImage", f"arn:aws:ecr:{REGION}:999999999999:repository/object-detection")
    assert allows(policy, "cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": "/aws/sagemaker/TrainingJobs"})
    assert not allows(policy, "cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": "Billing"})
    assert allows(policy, "logs:PutLogEvents",
                  f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/sagemaker/TrainingJobs:log-stream:x")


def test_unsubstituted_template_names_the_missing_value(values):
    partial = {k: v for k, v in values.items() if k != "ExecutionRoleName"}
    with pytest.raises(KeyError, match="ExecutionRoleName"):
        _render(AIRFLOW_POLICY, partial)



# -- tests: S3 keys and actions, derived from the code's own path builders ----------------------
READER_POLICY = "label-studio-reader-policy.json"
# Actions whose IAM authorisation has no s3:prefix condition key: only s3:ListBucket (and
# ListBucketVersions, unused) can be narrowed by prefix (Service Authorization Reference, Amazon S3,
# condition keys of each action). Listing open multipart uploads shows key names, not contents;
# ListMultipartUploadParts is an object-level action, scoped by the object ARN itself.
LIST_WITHOUT_PREFIX_KEY = {"s3:ListBucketMultipartUploads", "s3:ListMultipartUploadParts"}


@dataclass(frozen=True)
class S3Use:
    """One S3 permission a principal needs: the action, the ARN, the condition context, and why."""

    action: str
    resource: str
    why: str
    context: tuple[tuple[str, str], ...] = ()


def _key(uri: str) -> str:
    return uri.removeprefix("s3://").partition("/")[2]


def _uses(actions: Iterable[str], uri: str, why: str) -> list[S3Use]:
    return [S3Use(action, _obj(uri), why) for action in actions]


def _list(uri: str, why: str) -> S3Use:
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    return S3Use("s3:ListBucket", f"arn:aws:s3:::{bucket}", why, (("s3:prefix", prefix),))


def load_test_dag_default_report_prefix() -> str:
    """The ``report_s3_prefix`` default of the shapes demo's load-test DAG, read from the DAG itself."""
    from sagemaker_vision.core.pipeline_file import load_pipeline_file, pipelines_dir
    from sagemaker_vision.dags import load_test

    dag = load_test.build(load_pipeline_file(pipelines_dir() / "shapes-detector.yaml"))
    return dag.params["report_s3_prefix"]


def airflow_s3_uses(cfg) -> list[S3Use]:
    """Every S3 key prefix and action the Airflow principal uses, from the builders the code uses."""
    from local_aws.runtime import async_result_uris  # SageMaker's names for async results, as emulated
    from sagemaker_vision.core import labeling_inputs, labeling_job, naming, right_size, s3_sync_state
    from sagemaker_vision.core.async_inference import smoke_input_uri
    from sagemaker_vision.core.images import UNLABELED_REPORT_NAME
    from sagemaker_vision.core.lease import lease_key
    from sagemaker_vision.core.loadtest import fanout
    from sagemaker_vision.pipeline import manifests
    from sagemaker_vision.pipeline.images import report_uri

    root = f"s3://{cfg.bucket}/"
    image = cfg.raw_prefix + "shape_000.jpg"
    rw, read = ("s3:GetObject", "s3:PutObject"), ("s3:GetObject",)
    gt_inputs = labeling_inputs.labeling_input_uris(cfg.labeling_work_prefix + "inputs/")
    gt_output = labeling_job.output_manifest_uri(cfg.ground_truth_output_prefix, cfg.labeling_job_name)
    marker = manifests._marker_uri(cfg, hashlib.sha256(b"any data").hexdigest())
    async_output, async_failure = async_result_uris(cfg.async_output_prefix, cfg.async_failure_prefix,
                                                    "0f6c5f1e-6f2d-4c1b-9a57-2d3c8e1b7a90")
    # the load-test DAG's default report location, with a manual run id as the DAG appends it.
    run_id = "manual__2026-03-09T10-00-00+00-00"
    load_test_report = f"{root}{_key(load_test_dag_default_report_prefix())}{run_id}/report.json"
    uses = [
        *_uses(rw, image, "sync writes the partition's images; validate, smoke test and labeling read them"),
        *_uses(("s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"), image,
               "sync: large images go up in parts; a killed sync's uploads are aborted"),
        S3Use("s3:ListBucketMultipartUploads", f"arn:aws:s3:::{cfg.bucket}", "sync: open uploads under its dest",
              (("s3:prefix", _key(cfg.raw_prefix)),)),
        *_uses(rw, root + s3_sync_state.state_key(_key(cfg.raw_prefix)), "sync's state object"),
        _list(cfg.raw_prefix, "sync, validate_images and labeling list the partition"),
        _list(cfg.labels_prefix.rsplit("/", 2)[0] + "/", "prepare_manifests lists labels/"),
        *_uses(rw, report_uri(cfg), "validate_images' report"),
        *_uses(rw, f"{cfg.report_prefix}{UNLABELED_REPORT_NAME}", "the unlabeled-images report"),
        *_uses(rw, naming.smoke_report_uri(cfg), "smoke test result"),
        *_uses(rw, cfg.report_prefix + "report.json", "the pipeline's load test report (cfg.report_prefix)"),
        *_uses(("s3:PutObject",), load_test_report, "the load-test DAG's default report"),
        *_uses(rw, gt_inputs["input_manifest_uri"], "Ground Truth input manifest"),
        *_uses(rw, gt_inputs["categories_uri"], "Ground Truth label categories"),
        *_uses(rw, gt_inputs["template_uri"], "Ground Truth worker template"),
        *_uses(read, gt_output, "Ground Truth output manifest"),
        *_uses(rw, cfg.labeling_work_prefix + "label-studio.manifest", "Label Studio export"),
        *_uses(rw, cfg.labeled_manifest_uri, "label.publish copies the backend's manifest here"),
        *_uses(rw, cfg.train_manifest_uri, "prepare_manifests"),
        *_uses(rw, cfg.validation_manifest_uri, "prepare_manifests"),
        *_uses(rw, marker, "training marker (manifests._marker_uri)"),
        *_uses(rw, smoke_input_uri(cfg.run_prefix + "async/input/", image), "async smoke input"),
        *_uses(read, async_output, "async smoke result (OutputLocation)"),
        *_uses(read, async_failure, "async smoke error (FailureLocation), read to say why it failed"),
        *_uses(("s3:GetBucketCORS", "s3:PutBucketCORS"), f"s3://{cfg.bucket}", "Ground Truth's CORS rule"),
        # The image source: read-only.
        *_uses(read, cfg.image_source + "cam1/0001.jpg", "sync reads the source"),
        _list(cfg.image_source, "sync lists the source"),
    ]
    lease = f"s3://{cfg.bucket}/{lease_key(cfg)}"
    uses += _uses(rw, lease, "the endpoint's deploy lease (endpoint_lease.lease_key)")
    # The fanned-out load test: each worker's envelope per step and abort marker, listed by every worker
    # and the reduce, under the pipeline's report prefix; right-size's per-size reports and recommendation.
    right_size_reports = right_size.reports_prefix(cfg.bucket, cfg.prefix, run_id)
    (candidate,) = right_size.plan_candidates(cfg.pipeline_name, run_id, [2048], production_endpoint=cfg.endpoint_name,
                                              reports=right_size_reports)
    for where, key in (("the pipeline's", _key(cfg.report_prefix)),
                       ("a right-size size's", _key(candidate.report_prefix))):
        plan = fanout.plan_fanout(load_workers=2, concurrency_steps=[2], max_requests_per_step=4, step_seconds=1,
                                  request_timeout_s=1, s3_now=0, start_lead_s=0, bucket=cfg.bucket,
                                  prefix=fanout.fanout_prefix(key))
        uses += [_list(root + fanout.report_base(key), f"{where} load-test plan reads S3's clock from a listing"),
                 *_uses(rw, root + fanout.envelope_key(plan, 0, 1), f"{where} load worker's envelope of a step"),
                 *_uses(rw, root + fanout.abort_key(plan, 1), f"{where} load worker's abort marker"),
                 _list(root + plan.prefix, f"{where} load workers and reduce list the envelopes")]
    uses += [*_uses(rw, f"{candidate.report_prefix}report.json", "right-size: one size's load-test report"),
             *_uses(("s3:PutObject",), f"{right_size_reports}recommendation.json", "right-size's recommendation")]
    # A GET of a missing key answers 403 without ListBucket; hooks.s3.key_missing then lists the key
    # itself to tell "absent" from "denied". The lease needs no listing: it is written before it is
    # ever read (If-None-Match), and never deleted (tests/unit/hooks/test_endpoint_lease.py).
    uses.append(_list(root + s3_sync_state.state_key(_key(cfg.raw_prefix)),
                      "hooks.s3.key_missing: is the sync state there?"))
    return uses


def _granted(policy: Mapping[str, Any], service: str = "s3") -> set[str]:
    return {a for a in granted_actions(policy) if a.startswith(service + ":")}


def _unused_grants(policy: Mapping[str, Any], uses: Iterable[S3Use]) -> list[str]:
    """(statement, action) pairs of S3 grants that no use needs."""
    uses = list(uses)
    unused = []
    for st in policy["Statement"]:
        for action in _as_list(st["Action"]):
            if action.startswith("s3:") and not any(
                    u.action == action and statement_allows(st, u.action, u.resource, dict(u.context)) for u in uses):
                unused.append(f"{st['Sid']}: {action}")
    return unused


def test_every_s3_key_the_airflow_principal_uses_is_granted_and_nothing_else(cfg, values):
    policy = _render(AIRFLOW_POLICY, values)
    uses = airflow_s3_uses(cfg)
    refused = [u for u in uses if not allows(policy, u.action, u.resource, dict(u.context))]
    assert not refused, "airflow-role-policy.json refuses:\n" + "\n".join(
        f"  {u.action} {u.resource} {dict(u.context)}: {u.why}" for u in refused)
    assert not _unused_grants(policy, uses), "grants no code path uses"
    # The same actions as the code scan finds (argument-gated calls included only when a DAG asks).
    scanned = {a for a in required_actions(pipeline_calls()) if a.startswith("s3:")}
    assert {u.action for u in uses} == scanned == _granted(policy), (
        sorted({u.action for u in uses} ^ scanned), sorted(scanned ^ _granted(policy)))


def test_an_unused_delete_or_write_grant_is_caught(cfg, values):
    """The exactness check is not vacuous: a grant nothing needs, or an unconditioned list, is named."""
    policy = _render(AIRFLOW_POLICY, values)
    uses = airflow_s3_uses(cfg)
    widened = copy.deepcopy(policy)
    widened["Statement"].append({"Sid": "Extra", "Effect": "Allow", "Action": ["s3:DeleteObject", "s3:PutObject"],
                                 "Resource": f"arn:aws:s3:::{cfg.bucket}/{cfg.prefix}/*"})
    widened["Statement"].append({"Sid": "Billing", "Effect": "Allow", "Action": ["s3:PutObject"],
                                 "Resource": f"arn:aws:s3:::{cfg.bucket}/billing/*"})
    assert _unused_grants(widened, uses) == ["Extra: s3:DeleteObject", "Billing: s3:PutObject"]
    # The load test's old default report key (beside the prefix) is refused by the policy.
    assert not allows(policy, "s3:PutObject", f"arn:aws:s3:::{cfg.bucket}/load-tests/manual__x/report.json")


def test_delete_is_needed_only_where_a_dag_asks_the_sync_to_delete(tmp_path):
    scanned = {(c.service, c.operation) for c in discover()[0]}
    assert ("s3", "DeleteObjects") in scanned  # the sync can delete ...
    assert ("s3", "DeleteObjects") not in {(c.service, c.operation) for c in pipeline_calls()}  # ... no DAG asks
    assert keyword_uses("S3SyncOperator", "delete") == []
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "mirror.py").write_text("S3SyncOperator(task_id='m', source='a', dest='b', delete=True)\n")
    assert keyword_uses("S3SyncOperator", "delete", dirs=(dags,)) == ["mirror.py:1"]
    (dags / "mirror.py").write_text("S3SyncOperator(task_id='m', source='a', dest='b', delete=False)\n")
    assert keyword_uses("S3SyncOperator", "delete", dirs=(dags,)) == []


@pytest.mark.parametrize("name", [AIRFLOW_POLICY, EXECUTION_POLICY, READER_POLICY])
def test_no_list_without_a_prefix_condition(name):
    for st in load(name)["Statement"]:
        lists = [a for a in _as_list(st["Action"]) if a.startswith("s3:List") and a not in LIST_WITHOUT_PREFIX_KEY]
        if lists:
            prefixes = st.get("Condition", {}).get("StringLike", {}).get("s3:prefix")
            assert prefixes, f"{name} {st['Sid']}: {lists} without an s3:prefix condition"
            assert all(p not in ("", "*") for p in _as_list(prefixes)), (name, st["Sid"], prefixes)


def test_training_channel_check_sends_no_head_bucket():
    """IAM authorises HeadBucket as an unprefixed s3:ListBucket: the training pre-flight must not send it."""
    from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook

    from sagemaker_vision.hooks.sagemaker import SageMakerVisionHook
    from sagemaker_vision.operators.training import ObjectDetectionTrainingOperator

    assert ObjectDetectionTrainingOperator.aws_hook_class is SageMakerVisionHook
    sent: list[str] = []

    class S3:  # records what the check asks of S3
        def check_for_bucket(self, bucket_name):
            sent.append("HeadBucket")
            return True

        def check_for_key(self, key, bucket_name):
            sent.append(f"HeadObject {bucket_name}/{key}")
            return key.endswith(".manifest")

        def get_conn(self):  # the check reads the channel's object with hooks.s3.head_object_if_exists
            return self

        def head_object(self, Bucket, Key):  # noqa: N803 - boto3's parameter names
            from botocore.exceptions import ClientError

            if self.check_for_key(Key, Bucket):
                return {}
            raise ClientError({"Error": {"Code": "404"}, "ResponseMetadata": {"HTTPStatusCode": 404}}, "HeadObject")

        def check_for_prefix(self, prefix, bucket_name, delimiter):
            sent.append(f"ListObjectsV2 {bucket_name}/{prefix}")
            return False

    hook = SageMakerVisionHook.__new__(SageMakerVisionHook)
    hook.__dict__["s3_hook"] = S3()
    config = {"InputDataConfig": [{"DataSource": {"S3DataSource": {"S3Uri": "s3://b/p/runs/x/train.manifest"}}}]}
    hook.check_training_config(config)
    assert sent == ["HeadObject b/p/runs/x/train.manifest"]
    with pytest.raises(Exception, match="does not exist"):
        hook.check_s3_url("s3://b/p/runs/x/missing")
    assert "HeadBucket" not in sent
    # The provider's own check would have sent it.
    sent.clear()
    plain = SageMakerHook.__new__(SageMakerHook)
    plain.__dict__["s3_hook"] = S3()
    plain.check_training_config(config)
    assert sent[0] == "HeadBucket"


def sagemaker_s3_uses(cfg) -> list[S3Use]:
    """What SageMaker does with the execution role, read from the requests the package sends."""
    from sagemaker_vision.core import labeling_inputs, labeling_job
    from sagemaker_vision.core.async_inference import async_endpoint_config_request
    from sagemaker_vision.core.requests import model_artifact_uri, model_request, training_request

    training = training_request(cfg, num_classes=3, num_training_samples=10)
    uses = [use for ch in training["InputDataConfig"] for use in _uses(
        ("s3:GetObject",), ch["DataSource"]["S3DataSource"]["S3Uri"], f"training channel {ch['ChannelName']}")]
    uses += _uses(("s3:GetObject",), cfg.raw_prefix + "shape_000.jpg", "training reads the images the manifests name")
    assert training["OutputDataConfig"]["S3OutputPath"] == cfg.training_output_uri
    uses += _uses(("s3:PutObject", "s3:AbortMultipartUpload"), model_artifact_uri(cfg), "training writes the model")
    uses += _uses(("s3:GetObject",), model_request(cfg)["PrimaryContainer"]["ModelDataUrl"], "hosting loads the model")
    inputs = labeling_inputs.labeling_input_uris(cfg.labeling_work_prefix + "inputs/")
    gt = labeling_job.labeling_job_request(
        job_name=cfg.labeling_job_name, input_manifest_uri=inputs["input_manifest_uri"],
        output_path=cfg.ground_truth_output_prefix, role_arn=cfg.role_arn, label_attribute="bounding-box",
        labels=["circle"], categories_uri=inputs["categories_uri"], template_uri=inputs["template_uri"],
        region=REGION, task_description="Box it.",
        workteam_arn=f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:workteam/private-crowd/team")
    uses += _uses(("s3:GetObject",), gt["InputConfig"]["DataSource"]["S3DataSource"]["ManifestS3Uri"], "GT manifest")
    uses += _uses(("s3:GetObject",), gt["LabelCategoryConfigS3Uri"], "GT categories")
    uses += _uses(("s3:GetObject",), gt["HumanTaskConfig"]["UiConfig"]["UiTemplateS3Uri"], "GT template")
    uses += _uses(("s3:PutObject", "s3:AbortMultipartUpload"),
                  labeling_job.output_manifest_uri(gt["OutputConfig"]["S3OutputPath"], cfg.labeling_job_name),
                  "GT writes its output")
    config = async_endpoint_config_request(
        endpoint_config_name=cfg.endpoint_config_name, model_name=cfg.model_name, instance_type="ml.m5.large",
        instance_count=1, output_s3_uri=cfg.async_output_prefix, failure_s3_uri=cfg.async_failure_prefix, tags={})
    async_output = config["AsyncInferenceConfig"]["OutputConfig"]
    uses += _uses(("s3:PutObject", "s3:AbortMultipartUpload"), async_output["S3OutputPath"] + "0f6c.out", "async")
    uses += _uses(("s3:PutObject", "s3:AbortMultipartUpload"), async_output["S3FailurePath"] + "0f6c-error.out",
                  "async")
    uses += _uses(("s3:GetObject",), cfg.run_prefix + "async/input/shape_000.jpg", "async reads its input")
    # "CreateTrainingJob API: Execution Role Permissions" (SageMaker developer guide) lists
    # s3:ListBucket on the input bucket; the package's channels live under runs/.
    uses.append(_list(cfg.train_manifest_uri.rsplit("/", 1)[0] + "/", "training lists its input location"))
    return uses


def test_execution_role_grants_what_sagemaker_uses_and_nothing_else(cfg, values):
    policy = _render(EXECUTION_POLICY, values)
    uses = sagemaker_s3_uses(cfg)
    refused = [u for u in uses if not allows(policy, u.action, u.resource, dict(u.context))]
    assert not refused, "\n".join(f"{u.action} {u.resource}: {u.why}" for u in refused)
    assert not _unused_grants(policy, uses)


def test_label_studio_reader_reads_the_images_and_nothing_else(cfg, values):
    from sagemaker_vision.pipeline.label import synced_images  # noqa: F401 - the images Label Studio shows

    policy = _render(READER_POLICY, values)
    image = cfg.raw_prefix + "shape_000.jpg"
    uses = [*_uses(("s3:GetObject",), image, "annotators' browsers GET the presigned image URLs"),
            _list(cfg.raw_prefix.rstrip("/"), "s3_storage: Label Studio's sync lists the images' folder")]
    assert all(allows(policy, u.action, u.resource, dict(u.context)) for u in uses)
    assert not _unused_grants(policy, uses)
    for outside in (cfg.train_manifest_uri, cfg.labeled_manifest_uri, cfg.report_prefix + "report.json",
                    f"s3://{cfg.bucket}/billing/x.csv"):
        assert not allows(policy, "s3:GetObject", _obj(outside)), outside
    assert _granted(policy) == {"s3:GetObject", "s3:ListBucket"}  # no write, no delete
    assert granted_actions(policy) == _granted(policy)  # S3 only
