"""The import rules of docs/architecture.md, checked on the source.

- protocol/ imports the standard library only, and not even ``socket`` or the
  other I/O modules: it is sans-I/O (no trio, no sockets, no broker);
- routing/ imports the standard library and pyparsing;
- neither imports broker/ (nor routing/ from protocol/, protocol/ from routing/);
- broker/ is in layers (`BROKER_LAYERS`): each layer imports only the layers
  below it, and the core has no trio and no I/O;
- no import cycle among the project's own modules.

Every ``import``/``from ... import`` statement counts, including ones inside
functions, ``try`` blocks and ``if TYPE_CHECKING:``: a lazy import is still an
import, and a type-only import still couples the design.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STDLIB = set(sys.stdlib_module_names)
#: stdlib modules that do I/O or concurrency: a sans-I/O package has no use for them.
IO_MODULES = {
    "socket", "ssl", "select", "selectors", "asyncio", "threading", "multiprocessing",
    "subprocess", "socketserver", "http", "urllib", "signal",
}
#: The project's own top-level packages (everything else is the stdlib or a dependency).
PROJECT = ("protocol", "routing", "broker", "conformance")

RULES = {
    "protocol": {"allowed": STDLIB - IO_MODULES, "own": "protocol"},
    "routing": {"allowed": STDLIB | {"pyparsing"}, "own": "routing"},
}
#: The one exception: the benchmark compares the codec with pamqp, which it
#: imports inside a function (see test_protocol_bench_keeps_pamqp_optional).
EXCEPTIONS = {("protocol/bench.py", "pamqp")}

# -- broker/ in layers ----------------------------------------------------------
#
# Each broker module belongs to the layer of its longest matching prefix; a
# layer may import the layers it lists (and itself), protocol/ and routing/,
# the stdlib, and the third-party packages it lists. Read bottom-up:
#
#   core <- storage <- session <- server (composition root) <- tools
#   alarms, auth, settings: small leaves the session and the server use
#   admin: broker-wide operations (definitions JSON) for the server and management
#   management: reads core and session state, runs in the server
#   client: the trio client, on protocol/ alone; the tools use it
#   cluster: high availability's coordination: an etcd client (trio, h11), leader election
BROKER_LAYERS: dict[str, dict[str, set[str]]] = {
    "broker": {"layers": set(), "third_party": set()},  # __init__: the version
    "broker.logging": {"layers": set(), "third_party": {"structlog"}},
    "broker.core": {"layers": {"broker.logging"}, "third_party": set()},
    "broker.settings": {"layers": set(), "third_party": set()},
    "broker.auth": {"layers": {"broker.logging", "broker.core"}, "third_party": set()},
    "broker.alarms": {"layers": {"broker.logging"}, "third_party": {"trio"}},
    "broker.storage": {"layers": {"broker.logging", "broker.core"}, "third_party": {"trio"}},
    # Broker-wide operations (definitions JSON) the server and the management plane share.
    "broker.admin": {
        "layers": {"broker", "broker.logging", "broker.core", "broker.auth", "broker.storage"},
        "third_party": set(),
    },
    "broker.session": {
        "layers": {"broker", "broker.logging", "broker.core", "broker.storage", "broker.alarms",
                   "broker.auth", "broker.settings"},
        "third_party": {"trio"},
    },
    "broker.management": {
        "layers": {"broker", "broker.logging", "broker.core", "broker.storage", "broker.alarms",
                   "broker.auth", "broker.settings", "broker.session", "broker.admin"},
        "third_party": {"trio", "h11"},
    },
    "broker.server": {
        "layers": {"broker", "broker.logging", "broker.core", "broker.storage", "broker.alarms",
                   "broker.auth", "broker.settings", "broker.session", "broker.management",
                   "broker.topology_config", "broker.admin"},
        "third_party": {"trio"},
    },
    # Declares a configuration file's topology at start: the server's helper.
    "broker.topology_config": {
        "layers": {"broker.logging", "broker.core", "broker.auth"}, "third_party": set(),
    },
    "broker.client": {"layers": set(), "third_party": {"trio"}},
    # The cluster (issue 19): etcd, election, replication of the data directory.
    "broker.cluster": {"layers": {"broker.logging", "broker.storage"}, "third_party": {"trio", "h11"}},
    # A cluster node: leads (a broker with replication) or follows.
    "broker.node": {
        "layers": {"broker", "broker.logging", "broker.settings", "broker.storage",
                   "broker.cluster", "broker.server", "broker.management"},
        "third_party": {"trio"},
    },
}
#: Tools on top: the CLI, its commands, perf, the test helpers. They may
#: import anything; nothing above may import them.
BROKER_TOOLS = (
    "broker.cli", "broker.commands", "broker.perf", "broker.perf_compare", "broker.testing",
    "broker.pytest_plugin",
    "broker.__main__", "broker.client.bench", "broker.core.features.bench",
    "broker.management.bench", "broker.bench_streams", "broker.bench_cluster",
)
#: What a tool may import besides the project: its own dependencies (pytest
#: for the plugin; the client benchmark compares with pika and aio-pika,
#: imported inside the functions that run them).
TOOL_THIRD_PARTY = {"trio", "structlog", "pytest", "pyparsing", "h11", "pika", "aio_pika"}

#: The only import cycle allowed: a delivered message keeps a back-reference to
#: the channel it came from (for `message.ack()`), and that import is type-only.
ALLOWED_BACK_EDGES = {("broker.client.message", "broker.client.channel")}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, top-level module) for every absolute import in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name.split(".")[0]) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


def _files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    return {_module_name(p): p for package in PROJECT for p in _files(package)}


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The project module an import of `name` executes: itself, or its package."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def module_imports(name: str, path: Path, modules: dict[str, Path]) -> Iterator[tuple[int, str]]:
    """(line, imported module) for every import in a module, relative ones
    resolved: project modules by full name, others by their top-level name.
    `from package import submodule` counts as importing the submodule."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, _resolve(alias.name, modules) or alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                full = ".".join(base + ([node.module] if node.module else []))
            else:
                full = node.module or ""
            for alias in node.names:
                candidate = f"{full}.{alias.name}"
                if candidate in modules:
                    yield node.lineno, candidate
                else:
                    yield node.lineno, _resolve(full, modules) or full.split(".")[0]


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports (any import, anywhere in the file)."""
    modules = project_modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        graph[name] = {
            target for _line, target in module_imports(name, path, modules)
            if target in modules and target != name
        }
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    return cycles


def broker_layer(module: str) -> str | None:
    """The layer a broker module belongs to (longest prefix), None for a tool."""
    if any(module == tool or module.startswith(tool + ".") for tool in BROKER_TOOLS):
        return None
    best = None
    for layer in BROKER_LAYERS:
        if module == layer or module.startswith(layer + "."):
            if best is None or len(layer) > len(best):
                best = layer
    assert best is not None, f"{module} is in no layer of BROKER_LAYERS"
    return best


def _layer_of_target(target: str) -> str | None:
    if not target.startswith("broker"):
        return None
    return broker_layer(target)


@pytest.mark.parametrize("package", sorted(RULES))
def test_package_imports_follow_the_layering(package):
    rule = RULES[package]
    files = _files(package)
    assert files, f"{package}/ has no Python files"
    offenders = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in files
        for line, module in imported_modules(path)
        if module != rule["own"] and module not in rule["allowed"]
        and (str(path.relative_to(ROOT)), module) not in EXCEPTIONS
    ]
    assert offenders == []


def test_protocol_is_sans_io():
    """Spelled out, because it is the point of the package."""
    forbidden = {"trio", "socket", "broker", "routing", "asyncio", "ssl", "selectors"}
    offenders = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in _files("protocol")
        for line, module in imported_modules(path)
        if module in forbidden
    ]
    assert offenders == []


def test_broker_modules_import_only_the_layers_below():
    modules = project_modules()
    offenders = []
    for name, path in sorted(modules.items()):
        if not name.startswith("broker"):
            continue
        layer = broker_layer(name)
        for line, target in module_imports(name, path, modules):
            where = f"{path.relative_to(ROOT)}:{line} imports {target}"
            if target in modules:
                if target.startswith(("protocol", "routing")):
                    continue
                if target.startswith("conformance"):
                    offenders.append(where)
                    continue
                target_layer = _layer_of_target(target)
                if layer is None:  # a tool: anything but the conformance suite
                    continue
                if target_layer is None:
                    offenders.append(f"{where} (a tool)")
                elif target_layer != layer and target_layer not in BROKER_LAYERS[layer]["layers"]:
                    offenders.append(f"{where} (layer {layer} may not import {target_layer})")
            elif target not in STDLIB:
                allowed = TOOL_THIRD_PARTY if layer is None else BROKER_LAYERS[layer]["third_party"]
                if target not in allowed:
                    offenders.append(f"{where} (third-party, not allowed in {layer or 'tools'})")
    assert offenders == []


def test_the_core_has_no_io_and_no_trio():
    """The model (messages, queues, vhosts) is synchronous and testable without a loop."""
    forbidden = {"trio", "socket", "ssl", "select", "selectors", "asyncio", "threading",
                 "subprocess", "h11", "shutil"}
    offenders = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in _files("broker/core")
        for line, module in imported_modules(path)
        if module in forbidden
    ]
    assert offenders == []


def test_no_import_cycles_among_the_projects_modules():
    graph = import_graph()
    for source, target in ALLOWED_BACK_EDGES:
        # Allowed only while it stays type-only: then dropping it is sound.
        path = project_modules()[source]
        assert _imports_only_for_typing(path, target), f"{source} -> {target} is not type-only"
        graph[source].discard(target)
    assert import_cycles(graph) == []


def _imports_only_for_typing(path: Path, target: str) -> bool:
    """Does `path` import `target` only under `if TYPE_CHECKING:`?"""
    modules = project_modules()
    name = _module_name(path)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in ast.walk(node):
                if hasattr(inner, "lineno"):
                    typing_lines.add(inner.lineno)
    lines = [line for line, t in module_imports(name, path, modules) if t == target]
    return bool(lines) and all(line in typing_lines for line in lines)


def test_protocol_bench_keeps_pamqp_optional():
    """The benchmark compares with pamqp, but importing protocol.bench must not need it."""
    source = (ROOT / "protocol" / "bench.py").read_text(encoding="utf-8")
    tree = ast.parse(source)
    top_level = [
        node for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)
    ]
    assert all("pamqp" not in ast.dump(node) for node in top_level)


def test_the_checker_catches_a_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import os\ndef f():\n    import trio\nfrom broker.server import serve\n")
    assert sorted(m for _, m in imported_modules(bad)) == ["broker", "os", "trio"]


def test_the_cycle_finder_finds_type_only_and_lazy_cycles():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert import_cycles(graph) == [["a", "b", "c"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_counts_imports_under_type_checking_and_in_functions(tmp_path, monkeypatch):
    package = tmp_path / "broker"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from broker import b\n"
    )
    (package / "b.py").write_text("def f():\n    from .a import x\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "PROJECT", ("broker",))
    graph = import_graph()
    assert graph["broker.a"] == {"broker.b"} and graph["broker.b"] == {"broker.a"}
    assert import_cycles(graph) == [["broker.a", "broker.b"]]


def test_the_layer_check_knows_every_broker_module():
    """A new package under broker/ must be given a layer (or be a tool) on purpose."""
    for name in project_modules():
        if name.startswith("broker"):
            broker_layer(name)  # asserts
