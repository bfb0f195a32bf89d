"""Structure rules of issue 10, checked on the sources (an `ast` walk, no imports).

- `core/` is pure: it imports nothing from `agents/`, `dashboard/`, the root modules, HTTP,
  Modbus, Dash, sockets or threads; only `core/clock.py` may use `threading` and `time` (its
  waits are the one place time passes).
- Runtime code (everything but `tests/`, `bench/`, `tools/`): no file over 500 lines, no function
  over 60 lines, no import of `tools/` (tools use the runtime code, never the other way round).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOT_RUNTIME = {"tests", "bench", "tools", ".git", ".ci", "docs", "data", "logs", "test-artifacts"}
MAX_FILE_LINES = 500
MAX_FUNCTION_LINES = 60

CORE_FORBIDDEN = {
    "agents", "dashboard", "hil_scheduler", "istentore_api", "logger_config",
    "requests", "urllib3", "pymodbus", "dash", "flask", "waitress", "socket", "socketserver",
    "http", "threading", "asyncio", "subprocess", "multiprocessing", "concurrent", "time",
    "selenium",
}
CLOCK_MAY_USE = {"threading", "time"}


def runtime_sources() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*.py")
                  if p.relative_to(ROOT).parts[0] not in NOT_RUNTIME and ".venv" not in p.parts)


def imported_top_modules(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def long_functions(tree: ast.AST) -> list[tuple[str, int]]:
    return [(node.name, node.end_lineno - node.lineno + 1) for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]


def test_the_scan_sees_the_runtime_code():
    names = {p.relative_to(ROOT).as_posix() for p in runtime_sources()}
    assert {"hil_scheduler.py", "core/config.py", "agents/recorder.py", "dashboard/app.py"} <= names
    assert not any(name.startswith(("tests/", "bench/", "tools/")) for name in names)


@pytest.mark.parametrize("path", sorted((ROOT / "core").glob("*.py")), ids=lambda p: p.name)
def test_core_imports_nothing_impure(path):
    forbidden = CORE_FORBIDDEN - (CLOCK_MAY_USE if path.name == "clock.py" else set())
    found = imported_top_modules(ast.parse(path.read_text(encoding="utf-8"))) & forbidden
    assert not found, f"core/{path.name} imports {sorted(found)}"


def test_the_import_scan_catches_a_forbidden_import():
    tree = ast.parse("import threading\nfrom agents.poster import Poster\nfrom .x import y\n")
    assert imported_top_modules(tree) & CORE_FORBIDDEN == {"threading", "agents"}


def test_runtime_code_imports_nothing_from_tools():
    found = {p.relative_to(ROOT).as_posix() for p in runtime_sources()
             if "tools" in imported_top_modules(ast.parse(p.read_text(encoding="utf-8")))}
    assert not found


def test_no_runtime_file_is_too_long():
    too_long = {p.relative_to(ROOT).as_posix(): n for p in runtime_sources()
                if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_FILE_LINES}
    assert not too_long


def test_no_runtime_function_is_too_long():
    found = {f"{p.relative_to(ROOT).as_posix()}:{name}": n for p in runtime_sources()
             for name, n in long_functions(ast.parse(p.read_text(encoding="utf-8")))}
    assert not found


def test_the_function_scan_measures_whole_functions():
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    assert long_functions(ast.parse(f"def f():\n{body}\n")) == [("f", MAX_FUNCTION_LINES + 1)]
    assert long_functions(ast.parse("def g():\n    return 1\n")) == []
