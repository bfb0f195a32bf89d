"""Each `shared_data` key is written only in its owner module (`core.state.OWNER_BY_KEY`): a scan.

The scan parses every runtime source (all but tests/, bench/, tools/) with `ast` and finds writes:
subscript assignment, augmented assignment and `del` on `sd["key"]...`, and mutating method calls
(`update`, `pop`, `clear`, `append`, `setdefault`, ...) on `sd["key"]...` or on `sd` itself. A key
is found through a string constant, a name or attribute the module assigns the key to
(`flag = "schedule_switching"`, `_KEYS = {...}`), a parameter a call in the module passes the key
to, or a local alias (`entries = sd["command_log"]; entries.append(...)`). A write whose key cannot
be resolved is reported too, so a new indirection cannot hide a write.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from agents.shared_data import build_shared_data
from core.state import OWNER_BY_KEY

ROOT = Path(__file__).resolve().parents[2]
NOT_RUNTIME = ("tests", "bench", "tools")
SHARED_ROOTS = {"sd", "_sd", "shared_data", "shared", "_shared"}
MUTATORS = {"update", "pop", "clear", "append", "setdefault", "popitem", "appendleft", "extend",
            "extendleft", "insert", "remove", "add", "discard", "rotate", "__setitem__", "__delitem__"}
ALIAS_CALLS = {"get", "setdefault"}   # return an object inside the key's value, not a copy
UNRESOLVED = "<unresolved key>"
CREATOR = "agents/shared_data.py"   # gives every key its initial value: the frames after the listeners (issue 13)
CREATED_LATE = {"manual_schedule_df_by_plant", "api_schedule_df_by_plant", "current_file_df_by_plant",
                "measurements_df"}
SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef)


def runtime_sources() -> list[Path]:
    out = []
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).parts
        if parts[0] in NOT_RUNTIME or any(p.startswith(".") for p in parts):
            continue
        out.append(path)
    return out


def _symbol(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Subscript):
        return _symbol(node.value)
    return None


def _strings(node: ast.AST) -> set[str]:
    return {n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def _walk_scope(scope: ast.AST):
    """The nodes of one scope, not descending into nested functions (they are scopes of their own)."""
    todo = list(ast.iter_child_nodes(scope))
    while todo:
        node = todo.pop()
        yield node
        if not isinstance(node, SCOPES):
            todo.extend(ast.iter_child_nodes(node))


class _Module:
    """One parsed source: which shared keys each name, attribute or parameter can hold."""

    def __init__(self, tree: ast.Module):
        self.keys_by_symbol: dict[str, set[str]] = {}
        functions: dict[str, list[str]] = {}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    self._add(_symbol(target) if not isinstance(target, ast.Subscript) else None,
                              _strings(node.value))
            elif isinstance(node, SCOPES):
                functions[node.name] = [a.arg for a in node.args.posonlyargs + node.args.args]
        for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
            params = functions.get(_symbol(call.func) or "")
            if not params:
                continue
            offset = 1 if params[0] in ("self", "cls") and isinstance(call.func, ast.Attribute) else 0
            for i, arg in enumerate(call.args):
                if i + offset < len(params):
                    self._add(params[i + offset], _strings(arg))
            for kw in call.keywords:
                self._add(kw.arg, _strings(kw.value))

    def _add(self, symbol: str | None, strings: set[str]) -> None:
        keys = strings & set(OWNER_BY_KEY)
        if symbol and keys:
            self.keys_by_symbol.setdefault(symbol, set()).update(keys)

    def resolve(self, slice_node: ast.AST) -> set[str]:
        """Keys a subscript of `shared_data` can name; a constant that is no key is kept (a new key)."""
        if isinstance(slice_node, ast.Constant) and isinstance(slice_node.value, str):
            return {slice_node.value}
        return self.keys_by_symbol.get(_symbol(slice_node) or "", set()) or {UNRESOLVED}


def _chain_keys(node: ast.AST, module: _Module, aliases: dict[str, set[str]]) -> set[str]:
    """Shared keys whose value `node` (a subscript/alias chain) points into; empty when none."""
    subs = []
    while True:
        if isinstance(node, ast.Subscript):
            subs.append(node)
            node = node.value
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr in ALIAS_CALLS):
            node = node.func.value
        else:
            break
    root = _symbol(node) if isinstance(node, (ast.Name, ast.Attribute)) else None
    if root in SHARED_ROOTS and subs:
        return module.resolve(subs[-1].slice)
    if isinstance(node, ast.Name) and root in aliases:
        return aliases[root]
    # any other root: a constant key anywhere in the chain still counts (unusual spelling of sd)
    return {s.slice.value for s in subs if isinstance(s.slice, ast.Constant) and s.slice.value in OWNER_BY_KEY}


def _scope_aliases(scope: ast.AST, module: _Module) -> dict[str, set[str]]:
    aliases: dict[str, set[str]] = {}
    for node in _walk_scope(scope):
        if isinstance(node, ast.Assign):
            keys = _chain_keys(node.value, module, aliases) - {UNRESOLVED}
            for target in node.targets:
                if keys and isinstance(target, ast.Name):
                    aliases.setdefault(target.id, set()).update(keys)
    return aliases


def _targets(node: ast.AST) -> list[ast.AST]:
    if isinstance(node, ast.Assign):
        raw = node.targets
    elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
        raw = [node.target]
    elif isinstance(node, ast.Delete):
        raw = node.targets
    else:
        return []
    out = []
    for target in raw:
        out += target.elts if isinstance(target, (ast.Tuple, ast.List)) else [target]
    return [t for t in out if isinstance(t, ast.Subscript)]


def _call_keys(call: ast.Call, module: _Module, aliases: dict[str, set[str]]) -> set[str]:
    obj = call.func.value
    if isinstance(obj, (ast.Name, ast.Attribute)) and _symbol(obj) in SHARED_ROOTS:
        # a mutation of shared_data itself: the keys it names, or all of them
        if call.func.attr == "update":
            named = set()
            for arg in call.args:
                named |= {k.value for k in getattr(arg, "keys", []) if isinstance(k, ast.Constant)}
            named |= {kw.arg for kw in call.keywords if kw.arg}
            return named or {UNRESOLVED}
        return module.resolve(call.args[0]) if call.args else {UNRESOLVED}
    return _chain_keys(obj, module, aliases)


def scan_source(text: str, rel_path: str) -> list[tuple[str, int, str]]:
    """Writes of shared keys in one source: sorted `(rel_path, line, key)`."""
    tree = ast.parse(text)
    module = _Module(tree)
    found = set()
    for scope in [tree] + [n for n in ast.walk(tree) if isinstance(n, SCOPES)]:
        aliases = _scope_aliases(scope, module)
        for node in _walk_scope(scope):
            keys = set()
            for target in _targets(node):
                keys |= _chain_keys(target, module, aliases)
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in MUTATORS):
                keys |= _call_keys(node, module, aliases)
            found |= {(rel_path, node.lineno, key) for key in keys}
    return sorted(found)


def offenders(writes) -> list[str]:
    return [f"{path}:{line}: writes {key!r} (owner: {OWNER_BY_KEY.get(key, 'no such key')})"
            for path, line, key in writes if OWNER_BY_KEY.get(key, "") != path
            and not (path == CREATOR and key in CREATED_LATE)]


def scan_runtime() -> list[tuple[str, int, str]]:
    writes = []
    for path in runtime_sources():
        writes += scan_source(path.read_text(), path.relative_to(ROOT).as_posix())
    return writes


# ------------------------------------------------------------------------------- the contract
def test_owner_table_covers_exactly_the_shared_data_keys():
    assert set(OWNER_BY_KEY) == set(build_shared_data())


def test_every_owner_is_a_runtime_module():
    runtime = {p.relative_to(ROOT).as_posix() for p in runtime_sources()}
    assert {"hil_scheduler.py", "agents/control_agent.py", "core/state.py"} <= runtime
    missing = {owner for owner in OWNER_BY_KEY.values() if owner is not None} - runtime
    assert missing == set()


def test_the_architecture_table_names_the_same_owners():
    """docs/ARCHITECTURE.md's "Who writes what" table and OWNER_BY_KEY agree, key by key."""
    doc = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    section = doc.split("## Who writes what", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")][2:]   # past header, rule
    assert len(rows) >= 5
    documented = {}
    for row in rows:
        keys_cell, owner_cell = row.split("|")[1:3]
        modules = re.findall(r"`([\w/]+\.py)`", owner_cell)
        for key in re.findall(r"`(\w+)`", keys_cell):
            documented[key] = modules[0] if modules else None
    assert documented == OWNER_BY_KEY


def test_no_shared_key_is_written_outside_its_owner():
    bad = offenders(scan_runtime())
    assert bad == [], "shared_data written outside its owner:\n" + "\n".join(bad)


def test_the_scan_sees_the_owners_writes():
    """Guard against a scan that finds nothing: every key that changes at run time has a writer."""
    written = {key for path, _, key in scan_runtime() if path != CREATOR}
    never_written = {"measurements_df", "lock", "shutdown_event"}
    assert written == set(OWNER_BY_KEY) - never_written


# ------------------------------------------------------------------------- the scanner itself
WRITE_CASES = [
    ('sd["api_password"] = "x"', "api_password"),
    ('self.sd["plant_transition_by_plant"][pid] = "running"', "plant_transition_by_plant"),
    ('self._sd["schedule_revision"] += 1', "schedule_revision"),
    ('del shared_data["log_file_path"]', "log_file_path"),
    ('sd["plot_cache_by_plant"][pid]["n"] = 0', "plot_cache_by_plant"),
    ('a, sd["transport_mode"] = 1, "remote"', "transport_mode"),
    ('sd["data_fetcher_status"].update(error=None)', "data_fetcher_status"),
    ('sd["pending_rows_by_file"].pop(path)', "pending_rows_by_file"),
    ('sd["command_log"].clear()', "command_log"),
    ('sd["session_logs"].appendleft(1)', "session_logs"),
    ('sd["pending_rows_by_file"].setdefault(p, []).append(row)', "pending_rows_by_file"),
    ('sd["measurement_post_status"][pid].update(x=1)', "measurement_post_status"),
    ('shared_data.setdefault("log_lock", None)', "log_lock"),
    ('sd.pop("api_password")', "api_password"),
    ('sd.update({"transport_mode": "remote"})', "transport_mode"),
    ('entries = sd["command_log"]\nentries.append({})', "command_log"),
    ('statuses = self.sd["measurement_post_status"]\nstatuses[pid] = {}', "measurement_post_status"),
    ('rows = sd["pending_rows_by_file"].get(k)\nrows.extend(new)', "pending_rows_by_file"),
    ('key = "transport_mode"\nsd[key] = "remote"', "transport_mode"),
    ('K = {"m": "manual_schedule_df_by_plant"}\nself.sd[self.K[s]][p] = f', "manual_schedule_df_by_plant"),
    ('def flip(self, flag):\n    self.sd[flag] = True\nself.flip("schedule_switching")', "schedule_switching"),
    ('sd[compute()] = 1', UNRESOLVED),
    ('sd.clear()', UNRESOLVED),
    ('sd["brand_new_key"] = 1', "brand_new_key"),
    ('other["dispatch_status_by_plant"] = {}', "dispatch_status_by_plant"),
]


@pytest.mark.parametrize("snippet, key", WRITE_CASES)
def test_scanner_finds_a_planted_write(snippet, key):
    source = "def f(self, sd, shared_data, pid, path, p, k, s, f, row, new, other, compute):\n" + \
        "\n".join("    " + line for line in snippet.splitlines())
    writes = scan_source(source, "dashboard/planted.py")
    assert key in {k for _, _, k in writes}
    assert any(key in o for o in offenders(writes))


READ_CASES = [
    'x = sd["command_log"][-1]["id"]',
    'with sd["lock"]:\n    mode = sd["transport_mode"]',
    'status = dict(sd["dispatch_status_by_plant"][pid])\nstatus.update(x=1)\nstatus["a"] = 1',
    'logs = list(sd["session_logs"])\nlogs.append(1)',
    'fields = {}\nfields["write_status"] = "ok"',
    'n = len(sd["pending_rows_by_file"].get(k, ()))',
]


@pytest.mark.parametrize("snippet", READ_CASES)
def test_scanner_ignores_reads_and_copies(snippet):
    source = "def f(sd, pid, k):\n" + "\n".join("    " + line for line in snippet.splitlines())
    assert scan_source(source, "dashboard/reader.py") == []


def test_a_write_in_the_owner_module_is_no_offence():
    writes = scan_source('def f(sd, pid):\n    sd["dispatch_status_by_plant"][pid] = {}\n',
                         "agents/control_agent.py")
    assert [k for _, _, k in writes] == ["dispatch_status_by_plant"]
    assert offenders(writes) == []


def test_a_planted_violation_in_a_real_module_is_reported():
    path = ROOT / "agents" / "scheduler_agent.py"
    planted = path.read_text() + '\n\ndef _planted(sd):\n    sd["scheduler_running_by_plant"]["lib"] = True\n'
    bad = offenders(scan_source(planted, "agents/scheduler_agent.py"))
    assert len(bad) == 1 and "'scheduler_running_by_plant'" in bad[0]
