"""The tree's rules, checked on the source: a pure core, one GitHub adapter, simulators only in the demo."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# What the pure core may not touch: I/O libraries, the database, the clock, files.
IMPURE_MODULES = ("flask", "github", "jira", "sqlalchemy", "requests", "urllib", "socket", "gating.db", "gating.models")
IMPURE_CALLS = ("open", "datetime.now", "datetime.utcnow", "date.today", "time.time", "time.monotonic", "time.sleep")


def core_files() -> list[Path]:
    return [*sorted((ROOT / "gating" / "policy").glob("*.py")), ROOT / "gating" / "ledger" / "chain.py"]


def imported_modules(tree: ast.AST) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.lineno, node.module


def dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def impurities(source: str) -> list[str]:
    """Every import of an I/O module and every call to the clock or the file system, with its line."""
    tree = ast.parse(source)
    found = []
    for line, module in imported_modules(tree):
        if any(module == bad or module.startswith(bad + ".") for bad in IMPURE_MODULES):
            found.append(f"line {line}: imports {module}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and dotted(node.func) in IMPURE_CALLS:
            found.append(f"line {node.lineno}: calls {dotted(node.func)}()")
    return found


def test_the_purity_check_catches_each_kind_of_impurity() -> None:
    source = """
import requests
from gating.models import Emergency
from sqlalchemy.orm import Session
from datetime import datetime
import time

def evaluate():
    open("x")
    datetime.now()
    time.time()
"""
    assert impurities(source) == [
        "line 2: imports requests",
        "line 3: imports gating.models",
        "line 4: imports sqlalchemy.orm",
        "line 9: calls open()",
        "line 10: calls datetime.now()",
        "line 11: calls time.time()",
    ]
    assert impurities("from datetime import datetime\n\ndef f(now: datetime) -> datetime:\n    return now\n") == []


def test_the_core_does_no_io() -> None:
    files = core_files()
    names = {path.name for path in files}
    # Walking nothing proves nothing: the core's modules must be where this test looks.
    assert {"answers.py", "evidence.py", "emergency.py", "checks.py", "pull_request.py", "chain.py"} <= names, names
    problems = [f"{path.relative_to(ROOT)} {p}" for path in files for p in impurities(path.read_text())]
    assert not problems, "\n".join(problems)


def python_files(*folders: str) -> list[Path]:
    files = sorted(path for folder in folders for path in (ROOT / folder).rglob("*.py"))
    assert files, f"no Python files under {folders}"
    return files


def importers_of(module: str, files: list[Path]) -> set[str]:
    found = set()
    for path in files:
        for _line, name in imported_modules(ast.parse(path.read_text())):
            if name == module or name.startswith(module + "."):
                found.add(str(path.relative_to(ROOT)))
    return found


def test_only_the_github_adapter_imports_pygithub() -> None:
    importers = importers_of("github", python_files("gating", "jira_client"))
    assert importers, "PyGithub is imported nowhere: is the adapter still in gating/github_api?"
    assert {path for path in importers if not path.startswith("gating/github_api/")} == set()


def test_only_the_jira_client_imports_the_jira_library() -> None:
    importers = importers_of("jira", python_files("gating", "jira_client"))
    assert importers and {path for path in importers if not path.startswith("jira_client/")} == set()


def test_only_the_demo_imports_the_simulators() -> None:
    assert importers_of("simulators", python_files("gating", "jira_client")) == {"gating/demo.py"}
