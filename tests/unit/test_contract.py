"""The contract list (tests/contract/operations.py) against the package source, and the capture itself."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import boto3
import botocore.session
import pytest
from botocore import xform_name
from botocore.stub import Stubber

from tests.contract import capture, plugin
from tests.contract.operations import GAPS, HOOK_METHODS, NOT_AWS, OPERATIONS, PROVIDER_CLASSES

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("s3", "sagemaker", "sagemaker-runtime", "application-autoscaling", "cloudwatch", "logs", "sts", "iam")
SOURCES = sorted([*(ROOT / "plugins").rglob("*.py"), *(ROOT / "dags").rglob("*.py")])


def _snake_index() -> dict[str, set[str]]:
    session = botocore.session.get_session()
    index: dict[str, set[str]] = {}
    for service in SERVICES:
        for operation in session.get_service_model(service).operation_names:
            index.setdefault(xform_name(operation), set()).add(f"{service}.{operation}")
    return index


def _scan() -> dict[str, set[str]]:
    """What the source calls: attribute-call names, paginator/waiter names, waiter-model operations,
    provider classes imported and provider hook methods called -> files."""
    found: dict[str, set[str]] = {}

    def add(key: str, path: Path) -> None:
        found.setdefault(key, set()).add(str(path.relative_to(ROOT)))

    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook

    hook_methods = {m for cls in (S3Hook, SageMakerHook, AwsBaseHook) for m in dir(cls)
                    if not m.startswith("_") and callable(getattr(cls, m, None))
                    and not isinstance(getattr(cls, m, None), type)}
    for path in SOURCES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("airflow.providers.amazon"):
                for alias in node.names:
                    if re.search(r"^[A-Z].*(Operator|Sensor|Trigger|Hook|HookMixin|Waiter)$", alias.name):
                        add(f"class:{alias.name}", path)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                name = node.func.attr
                add(f"call:{name}", path)
                if name in hook_methods:
                    add(f"hook:{name}", path)
                if name in ("get_paginator", "get_waiter") and node.args and isinstance(node.args[0], ast.Constant):
                    add(f"{name}:{node.args[0].value}", path)
    for path in [*(ROOT / "plugins").rglob("*.py"), *(ROOT / "plugins").rglob("*.json")]:
        for operation in re.findall(r'"operation"\s*:\s*"(\w+)"', path.read_text(encoding="utf-8")):
            add(f"waiter-operation:{operation}", path)
    return found


def _sm_waiter_operation(name: str) -> str:
    model = botocore.session.get_session().get_waiter_model("sagemaker")
    return "sagemaker." + model.get_waiter("".join(p.title() for p in name.split("_"))).operation


def test_every_operation_the_package_calls_is_in_the_contract():
    index = _snake_index()
    scanned = _scan()
    listed_snake = {xform_name(name.split(".", 1)[1]) for name in OPERATIONS}
    missing = []
    for key, files in sorted(scanned.items()):
        kind, _, name = key.partition(":")
        if kind == "call" and name in index and name not in listed_snake and name not in NOT_AWS:
            missing.append(f"{sorted(index[name])} called as .{name}() in {sorted(files)}")
        elif kind == "get_paginator" and name not in listed_snake:
            missing.append(f"paginator {name} in {sorted(files)}")
        elif kind == "get_waiter" and _sm_waiter_operation(name) not in OPERATIONS:
            missing.append(f"waiter {name} ({_sm_waiter_operation(name)}) in {sorted(files)}")
        elif kind == "waiter-operation" and not any(n.endswith("." + name) for n in OPERATIONS):
            missing.append(f"waiter model operation {name} in {sorted(files)}")
        elif kind == "class" and name not in PROVIDER_CLASSES:
            missing.append(f"provider class {name} in {sorted(files)}: list what it calls in PROVIDER_CLASSES")
        elif kind == "hook" and name not in HOOK_METHODS and name not in index:
            missing.append(f"provider hook method {name} in {sorted(files)}: list what it calls in HOOK_METHODS")
    assert not missing, "\n".join(missing)


def test_the_contract_lists_only_real_operations_and_nothing_stale():
    session = botocore.session.get_session()
    referenced = {op for ops in (*PROVIDER_CLASSES.values(), *HOOK_METHODS.values()) for op in ops}
    for name in [*OPERATIONS, *referenced, *GAPS]:
        service, operation = name.split(".", 1)
        assert operation in session.get_service_model(service).operation_names, name
    assert referenced <= set(OPERATIONS) and set(GAPS) <= set(OPERATIONS)
    # every listed operation is still called somewhere (by name, paginator, waiter model or provider)
    scanned = _scan()
    names = {k.partition(":")[2] for k in scanned}
    for name in OPERATIONS:
        operation = name.split(".", 1)[1]
        assert xform_name(operation) in names or operation in names or name in referenced, f"{name} is stale"


def test_the_strict_walk_runs_on_every_captured_call_and_attributes_it(tmp_path):
    cap = capture.Capture(str(tmp_path / "c.jsonl"))
    client = boto3.client("sagemaker", region_name="us-east-1")
    with Stubber(client) as stub:
        stub.add_response("describe_endpoint", {
            "EndpointName": "x", "EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/x",
            "EndpointConfigName": "c", "EndpointStatus": "InService",
            "CreationTime": "2026-01-01T00:00:00Z", "LastModifiedTime": "2026-01-01T00:00:00Z"})
        stub.add_response("describe_endpoint", {
            "EndpointName": "x", "EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/x",
            "EndpointConfigName": "c", "EndpointStatus": "InService",
            "CreationTime": "2026-01-01T00:00:00Z", "LastModifiedTime": "2026-01-01T00:00:00Z"})
        active = capture.active()
        if active is None:
            pytest.skip("capture disabled (SV_CONTRACT=0)")
        active.flush()
        offset = Path(active.sink).stat().st_size if active.sink and Path(active.sink).exists() else 0
        client.describe_endpoint(EndpointName="x")
        client.describe_endpoint(EndpointName="bad_name")  # botocore lets it through; strict does not
    active.flush()
    with open(active.sink, encoding="utf-8") as handle:
        handle.seek(offset)
        rows = [json.loads(line) for line in handle.read().splitlines() if line]
    mine = [r for r in rows if (r["origin"], r["operation"]) == ("test", "DescribeEndpoint")]
    assert sum(r["count"] for r in mine) == 2
    assert any(v.startswith("1 validation error detected: Value 'bad_name'") for r in mine for v in r["violations"])
    cap.record("sagemaker", "DescribeEndpoint", {"EndpointName": "bad_name"}, "package")
    cap.flush()
    merged = capture.Capture()
    merged.merge_file(tmp_path / "c.jsonl")
    (message,) = merged.violations[("package", "sagemaker", "DescribeEndpoint")]
    assert message.startswith("1 validation error detected: Value 'bad_name' at 'endpointName'")
    report = plugin.build_report(merged, enforce_gaps=False)
    row = next(r for r in report["rows"] if r["operation"] == "sagemaker.DescribeEndpoint")
    assert row["status"] == "VIOLATES" and report["failures"]


def test_report_gaps_unlisted_and_stale_entries():
    merged = capture.Capture()
    merged.counts[("package", "sagemaker", "DescribeEndpoint")] = 3
    merged.counts[("package", "sagemaker", "ListDomains")] = 1  # not in the contract
    report = plugin.build_report(merged, enforce_gaps=True)
    assert "sagemaker.ListDomains" in report["unlisted"]
    assert "sagemaker.CreateModel" in report["gaps"]
    assert any("never captured" in f for f in report["failures"])
    assert not any(f.startswith("sagemaker.DescribeEndpoint:") for f in report["failures"])
    assert not any("never captured" in f for f in plugin.build_report(merged, enforce_gaps=False)["failures"])


def test_child_processes_are_captured_through_the_env_file(tmp_path):
    sink = tmp_path / "child.jsonl"
    code = ("import boto3\nfrom botocore.stub import Stubber\n"
            "c = boto3.client('logs', region_name='us-east-1')\n"
            "with Stubber(c) as s:\n"
            "    s.add_response('get_log_events', {'events': []})\n"
            "    c.get_log_events(logGroupName='g', logStreamName='s', limit=10001)\n")
    env = {"SV_CONTRACT_CAPTURE": str(sink), "PYTHONPATH": str(plugin.SITE), "PATH": "/usr/bin:/bin",
           "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, cwd=tmp_path, timeout=120)
    rows = [json.loads(line) for line in sink.read_text().splitlines()]
    (row,) = [r for r in rows if r["operation"] == "GetLogEvents"]
    assert row["origin"] == "other" and row["count"] == 1
    merged = capture.Capture()
    merged.merge_file(sink)
    assert merged.counts[("other", "logs", "GetLogEvents")] == 1


def test_the_capture_sitecustomize_hands_over_to_the_one_it_hides(tmp_path):
    # Python runs only the first sitecustomize on sys.path: ours must run the next one too.
    other = tmp_path / "other"
    other.mkdir()
    marker = tmp_path / "marker.txt"
    (other / "sitecustomize.py").write_text(
        "import os, sys\n"
        "open(os.environ['SV_TEST_MARKER'], 'w')"
        ".write(__name__ + ' ' + repr(sys.modules.get('_sv_contract_capture')))\n"
        "import builtins\nbuiltins._sv_other_site_ran = True\n")
    sink = tmp_path / "child.jsonl"
    code = ("import builtins, boto3, sitecustomize\nfrom botocore.stub import Stubber\n"
            "assert getattr(builtins, '_sv_other_site_ran', False)\n"
            "assert sitecustomize.chained is not None and sitecustomize.chained.__file__.endswith("
            "'other/sitecustomize.py')\n"
            "c = boto3.client('logs', region_name='us-east-1')\n"
            "with Stubber(c) as s:\n"
            "    s.add_response('describe_log_groups', {'logGroups': []})\n"
            "    c.describe_log_groups()\n")
    env = {"SV_CONTRACT_CAPTURE": str(sink), "SV_TEST_MARKER": str(marker), "PATH": "/usr/bin:/bin",
           "PYTHONPATH": os.pathsep.join([str(plugin.SITE), str(other)]),
           "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, cwd=tmp_path, timeout=120)
    assert marker.read_text().startswith("sitecustomize ")
    rows = [json.loads(line) for line in sink.read_text().splitlines()]
    assert [r["count"] for r in rows if r["operation"] == "DescribeLogGroups"] == [1]  # capture still works

    # A broken hidden sitecustomize is reported as site reports one; the capture keeps working.
    (other / "sitecustomize.py").write_text("raise RuntimeError('broken on purpose')\n")
    sink.unlink()
    done = subprocess.run([sys.executable, "-c", code.replace("assert getattr", "0 and getattr")],
                          env=env, cwd=tmp_path, timeout=120, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "Error in sitecustomize" in done.stderr and "broken on purpose" in done.stderr
    assert sink.exists()

    # With no other sitecustomize on the path, nothing is chained.
    (other / "sitecustomize.py").unlink()
    check = "import sitecustomize; assert sitecustomize.chained is None"
    subprocess.run([sys.executable, "-c", check], env=env, check=True, cwd=tmp_path, timeout=120)


def test_the_training_operator_never_prints_cloudwatch_logs():
    """print_log=True would add logs.DescribeLogStreams and logs.GetLogEvents to the contract."""
    values = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.keyword) and node.arg == "print_log":
                values.append((str(path.relative_to(ROOT)), ast.unparse(node.value)))
    assert values and all(value == "False" for _, value in values), values
    assert "logs.GetLogEvents" not in OPERATIONS


def test_a_session_whose_package_code_breaks_the_model_fails(tmp_path):
    """End to end through pytest: the report is written and printed, and the exit status is 1."""
    test_file = tmp_path / "test_fake.py"
    test_file.write_text(
        "import boto3\n"
        "from botocore.stub import Stubber\n"
        "from pathlib import Path\n"
        f"ROOT = Path({str(ROOT)!r})\n"
        "SRC = 'def describe(client, name):\\n    return client.describe_endpoint(EndpointName=name)\\n'\n"
        "def test_package_call():\n"
        "    scope = {}\n"
        "    exec(compile(SRC, str(ROOT / 'plugins' / 'sagemaker_vision' / 'fake.py'), 'exec'), scope)\n"
        "    client = boto3.client('sagemaker', region_name='us-east-1')\n"
        "    with Stubber(client) as stub:\n"
        "        stub.add_response('describe_endpoint', {'EndpointName': 'x', 'EndpointArn': 'arn:aws:sagemaker:'\n"
        "            'us-east-1:123456789012:endpoint/x', 'EndpointStatus': 'InService',\n"
        "            'CreationTime': '2026-01-01T00:00:00Z', 'LastModifiedTime': '2026-01-01T00:00:00Z'})\n"
        "        scope['describe'](client, 'bad_name')\n")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
           "HOME": str(tmp_path), "SV_CONTRACT_DIR": str(tmp_path / "artifacts")}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "tests.contract.plugin", "-p", "no:cacheprovider",
               str(test_file)]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert "1 passed" in result.stdout
    assert ("FAIL sagemaker.DescribeEndpoint: 1 validation error detected: Value 'bad_name' at 'endpointName'"
            in result.stdout), result.stdout[-3000:]
    assert "[from plugins/sagemaker_vision/fake.py:2]" in result.stdout
    assert "FAIL sagemaker.DescribeEndpoint" in (tmp_path / "artifacts" / "contract-report.txt").read_text()
