"""broker/auth is pure: standard library only, so any layer may import it.

No trio, no sockets, no other broker module (docs/internals.md's layering,
checked like tests/test_layering.py does for protocol/ and routing/).
"""

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IO_MODULES = {"socket", "ssl", "select", "selectors", "asyncio", "threading", "subprocess"}


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.lineno, "." * node.level + (node.module or "")))
    return found


def test_broker_auth_imports_the_standard_library_only():
    files = sorted((ROOT / "broker" / "auth").rglob("*.py"))
    assert files
    offenders = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in files
        for line, module in _imports(path)
        if not (module.startswith("broker.auth") or module.startswith("."))
        and (module.split(".")[0] not in sys.stdlib_module_names or module.split(".")[0] in IO_MODULES)
    ]
    assert offenders == []
