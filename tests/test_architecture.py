"""The house rules that keep electra/ readable (issue 12): no file over 450 lines, no function over 100 lines.

    .venv/bin/pytest -q tests/test_architecture.py
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "electra"
MAX_FILE_LINES = 450
MAX_FUNCTION_LINES = 100


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def long_functions(source: str, limit: int = MAX_FUNCTION_LINES) -> list[tuple[str, int]]:
    """(qualified name, lines) of every function or method longer than `limit` lines, decorators excluded."""
    found = []

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    lines = child.end_lineno - child.lineno + 1
                    if lines > limit:
                        found.append((name, lines))
                visit(child, name + ".")

    visit(ast.parse(source), "")
    return found


def test_no_file_over_the_limit():
    over = {str(p.relative_to(PACKAGE.parent)): n for p in _modules()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_FILE_LINES}
    assert not over, f"files over {MAX_FILE_LINES} lines (split them by concept): {over}"


def test_no_function_over_the_limit():
    over = {f"{p.relative_to(PACKAGE.parent)}:{name}": n for p in _modules()
            for name, n in long_functions(p.read_text(encoding="utf-8"))}
    assert not over, f"functions over {MAX_FUNCTION_LINES} lines: {over}"


def test_the_checker_sees_methods_and_nested_functions():
    body = "\n".join(f"    x{i} = {i}" for i in range(101))
    source = f"class A:\n  def m(self):\n{body}\n\ndef short():\n    return 1\n\ndef outer():\n  def inner():\n{body}\n"
    names = dict(long_functions(source))
    assert set(names) == {"A.m", "outer", "outer.inner"} and names["A.m"] == 102
