"""No operator of the package runs another operator's ``execute()`` (Airflow 3's executor safeguard).

Airflow warns on every such call in a real run, and raises with ``allow_nested_operators=False``.
The runtime check is in ``tests/integration/test_labeling_pipeline.py``; this scan catches the
pattern in any module, including code paths no test runs. ``super().execute(...)`` (an operator
running its own base class) is what the safeguard allows.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted([*(ROOT / "plugins" / "sagemaker_vision").rglob("*.py"), *(ROOT / "dags").glob("*.py")])


def nested_execute_calls(source: str, filename: str = "<source>") -> list[str]:
    """``file:line`` of every ``<something>.execute(...)`` call that is not ``super().execute(...)``."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "execute"):
            continue
        owner = node.func.value
        if isinstance(owner, ast.Call) and isinstance(owner.func, ast.Name) and owner.func.id == "super":
            continue
        found.append(f"{filename}:{node.lineno}")
    return found


def test_no_module_runs_another_operators_execute():
    offenders = [hit for path in SOURCES
                 for hit in nested_execute_calls(path.read_text(), str(path.relative_to(ROOT)))]
    assert offenders == [], "run each operator as a task of its own (a branch or task group): " + ", ".join(offenders)


def test_the_scan_finds_the_old_label_tasks_nested_call():
    old = (
        "class LabelImagesOperator(BaseOperator):\n"
        "    def execute(self, context):\n"
        "        return self._backend(cfg, images).execute(context)\n"
    )
    assert nested_execute_calls(old) == ["<source>:3"]
    assert nested_execute_calls("class A(B):\n    def execute(self, c):\n        return super().execute(c)\n") == []
