"""The credentials part of broker/auth is pure: standard library only.

`passwords`, `users` and `permissions` use no trio, no sockets and no other
broker module, so that the CLI and tools can hash and check without a
broker. (`access`, which raises the core's AMQP errors, follows the layer
rules of tests/test_layering.py instead.)
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
    files = [ROOT / "broker" / "auth" / f"{name}.py" for name in ("passwords", "users", "permissions")]
    assert files
    offenders = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in files
        for line, module in _imports(path)
        if not (module.startswith("broker.auth") or module.startswith("."))
        and (module.split(".")[0] not in sys.stdlib_module_names or module.split(".")[0] in IO_MODULES)
    ]
    assert offenders == []
