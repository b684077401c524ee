"""The tree's dependency rules (docs/architecture.md), read from every import statement.

The serving core imports neither MLflow nor the package that talks to it; neither package imports
the test or benchmark helpers; bench/ and harness/ never reach into tests/.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

# package folder -> the top-level modules none of its files may import
FORBIDDEN = {
    "web_service": {"mlflow", "web_service_mlflow", "harness", "bench", "tests"},
    "web_service_mlflow": {"harness", "bench", "tests"},
    "bench": {"tests"},
    "harness": {"tests", "bench"},
}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every import in the file, at any depth (lazy imports inside functions too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def broken_rules(package: str) -> list[str]:
    forbidden = FORBIDDEN[package]
    return [
        f"{path.relative_to(REPO)}:{line} imports {module}"
        for path in sorted((REPO / package).rglob("*.py"))
        for line, module in imported_modules(path)
        if module.split(".")[0] in forbidden
    ]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_each_package_imports_only_what_the_dependency_rule_allows(package):
    assert broken_rules(package) == []


def test_the_scan_sees_lazy_imports_inside_functions(tmp_path):
    module = tmp_path / "lazy.py"
    module.write_text("def load():\n    from tests.conftest import REPO\n    import mlflow.sklearn\n")

    assert imported_modules(module) == [(2, "tests.conftest"), (3, "mlflow.sklearn")]
