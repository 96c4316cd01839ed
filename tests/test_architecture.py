"""The package's layers (import-linter contracts in pyproject.toml) and where its imports sit."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "beatdbn"


def _package_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "beatdbn" else None


def function_local_imports(path: Path) -> list[tuple[int, str, str]]:
    """(line, imported module, the line's text) of every import inside a function body of ``path`` that reaches
    another beatdbn package than the file's own."""
    own = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
    tree = ast.parse(path.read_text(encoding="utf-8"))
    lines = path.read_text(encoding="utf-8").splitlines()
    found = []
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(fn):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                package = _package_of(name)
                if package is not None and package != own:
                    found.append((node.lineno, name, lines[node.lineno - 1]))
    return found


def test_import_linter_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    if not lint.exists():
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    done = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_no_function_local_import_crosses_a_package_without_a_reason():
    """Imports between packages sit at module top; one inside a function needs a comment saying why
    (a heavy optional dependency, or a cycle the layers allow) on its line."""
    bare = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for line, module, text in function_local_imports(path):
            if "#" not in text:
                bare.append(f"{path.relative_to(ROOT)}:{line}: {module}")
    assert not bare, "function-local imports across packages without a reason:\n" + "\n".join(bare)


def test_the_checker_finds_a_hidden_local_import(tmp_path):
    """The AST check itself can fail: a function-local import of another package is found."""
    fake = PACKAGE / "train" / "_probe_for_test.py"
    try:
        fake.write_text("def f():\n    from beatdbn.evaluate.table import Table1\n    return Table1\n")
        assert function_local_imports(fake) == [(2, "beatdbn.evaluate.table",
                                                 "    from beatdbn.evaluate.table import Table1")]
    finally:
        fake.unlink()
