"""The package's layers (import-linter contracts in pyproject.toml) and where its imports sit."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "beatdbn"
REASON = re.compile(r"#.*\breason:\s*\S.{5,}")  # "# reason: <why this import sits in a function>"


def _package_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "beatdbn" else None


def _absolute(node: ast.ImportFrom, module_path: tuple[str, ...]) -> str:
    """The absolute module of a ``from ... import`` (relative ones resolved against ``module_path``)."""
    if node.level == 0:
        return node.module or ""
    base = list(module_path[:-1])  # the package holding the module
    base = base[:len(base) - (node.level - 1)] if node.level > 1 else base
    return ".".join(base + ([node.module] if node.module else []))


def function_local_imports(path: Path, *, package_root: Path = PACKAGE) -> list[tuple[int, str, str]]:
    """(line, imported module, the line's text) of every import inside a function body of ``path`` that
    reaches another beatdbn package than the file's own: ``import``, ``from ... import`` (relative ones
    resolved) and ``importlib.import_module("beatdbn....")`` with a literal name."""
    rel = path.relative_to(package_root).with_suffix("").parts
    module_path = ("beatdbn",) + rel
    own = rel[0]
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    found = []
    for fn in ast.walk(ast.parse(text)):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(fn):
            names = []
            if isinstance(node, ast.ImportFrom):
                names = [_absolute(node, module_path)]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif (isinstance(node, ast.Call) and isinstance(node.func, (ast.Attribute, ast.Name))
                  and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id) == "import_module"
                  and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                names = [node.args[0].value]
            for name in names:
                package = _package_of(name)
                if package is not None and package != own:
                    found.append((node.lineno, name, lines[node.lineno - 1]))
    return sorted(found)


def bare_local_imports(package_root: Path = PACKAGE) -> list[str]:
    """``file:line: module`` of every cross-package function-local import without a ``# reason: ...``."""
    bare = []
    for path in sorted(package_root.rglob("*.py")):
        for line, module, text in function_local_imports(path, package_root=package_root):
            if not REASON.search(text):
                bare.append(f"{path.relative_to(package_root.parent)}:{line}: {module}")
    return bare


def test_import_linter_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    if not lint.exists():
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    done = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_the_contracts_catch_a_model_that_reads_files(tmp_path):
    """The contracts can fail: the same pyproject contracts on a skeleton package whose ``models`` imports
    ``store`` report it broken."""
    lint = Path(sys.executable).with_name("lint-imports")
    if not lint.exists():
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    skeleton = tmp_path / "src" / "beatdbn"
    skeleton.mkdir(parents=True)
    for sub in PACKAGE.iterdir():  # every package and top-level module, empty
        if sub.is_dir() and (sub / "__init__.py").exists():
            (skeleton / sub.name).mkdir()
            (skeleton / sub.name / "__init__.py").write_text("")
        elif sub.suffix == ".py":
            (skeleton / sub.name).write_text("")
    (skeleton / "models" / "reader.py").write_text("import beatdbn.store\n")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    done = subprocess.run([str(lint)], cwd=tmp_path, capture_output=True, text=True,
                          env={"PYTHONPATH": str(tmp_path / "src"), "PATH": "/usr/bin:/bin"})
    assert done.returncode != 0 and "models see tensors" in done.stdout and "BROKEN" in done.stdout, done.stdout


def test_no_function_local_import_crosses_a_package_without_a_reason():
    """Imports between packages sit at module top; one inside a function says why on its line
    (``# reason: a heavy optional dependency``, ``# reason: a cycle the layers allow``, ...)."""
    bare = bare_local_imports()
    assert not bare, "function-local imports across packages without '# reason: ...':\n" + "\n".join(bare)


def test_the_checker_finds_hidden_local_imports(tmp_path):
    """The AST check itself can fail: absolute, relative and importlib imports of another package inside
    a function are found, and only a real ``reason:`` text excuses one."""
    root = tmp_path / "beatdbn"
    (root / "train").mkdir(parents=True)
    probe = root / "train" / "probe.py"
    probe.write_text(
        "import importlib\n"
        "from beatdbn.train import rundir\n"                        # top level, own package: fine
        "def f():\n"
        "    from beatdbn.evaluate.table import Table1  # lazy\n"   # a comment but no reason
        "    from ..evaluate import report\n"                       # relative, another package
        "    from . import runner  # reason: own package anyway\n"  # own package: not reported
        "    m = importlib.import_module('beatdbn.serve.app')\n"
        "    from beatdbn.plots import filters  # reason: matplotlib is heavy, only this path draws\n"
        "    return Table1, report, m, filters\n")
    found = function_local_imports(probe, package_root=root)
    assert [(line, module) for line, module, _ in found] == [
        (4, "beatdbn.evaluate.table"), (5, "beatdbn.evaluate"), (7, "beatdbn.serve.app"), (8, "beatdbn.plots")]
    assert bare_local_imports(root) == ["beatdbn/train/probe.py:4: beatdbn.evaluate.table",
                                        "beatdbn/train/probe.py:5: beatdbn.evaluate",
                                        "beatdbn/train/probe.py:7: beatdbn.serve.app"]


def test_load_split_declares_what_it_uses(demo_corpus):
    """``data`` names its inputs by protocol: a FeatureStore and a Task satisfy them, a bare object does not."""
    from beatdbn.data.splits import SplitSource, TrackSource
    from beatdbn.store.reader import FeatureStore
    from beatdbn.tasks.build import load_task

    assert isinstance(FeatureStore.open(demo_corpus["store"]), TrackSource)
    assert isinstance(load_task(demo_corpus["tasks"], "key"), SplitSource)
    assert not isinstance(object(), TrackSource) and not isinstance(object(), SplitSource)
