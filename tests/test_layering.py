"""The import rules of docs/internals.md, checked on the source.

- protocol/ imports the standard library only, and not even ``socket`` or the
  other I/O modules: it is sans-I/O (no trio, no sockets, no broker);
- routing/ imports the standard library and pyparsing;
- neither imports broker/ (nor routing/ from protocol/, protocol/ from routing/).

Every ``import``/``from ... import`` statement is checked, including ones inside
functions and ``try`` blocks, since a lazy import is still an import.
"""

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STDLIB = set(sys.stdlib_module_names)
#: stdlib modules that do I/O or concurrency: a sans-I/O package has no use for them.
IO_MODULES = {
    "socket", "ssl", "select", "selectors", "asyncio", "threading", "multiprocessing",
    "subprocess", "socketserver", "http", "urllib", "signal",
}

RULES = {
    "protocol": {"allowed": STDLIB - IO_MODULES, "own": "protocol"},
    "routing": {"allowed": STDLIB | {"pyparsing"}, "own": "routing"},
}
#: The one exception: the benchmark compares the codec with pamqp, which it
#: imports inside a function (see test_protocol_bench_keeps_pamqp_optional).
EXCEPTIONS = {("protocol/bench.py", "pamqp")}


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
