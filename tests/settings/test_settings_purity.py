"""broker/settings is pure: standard library only, so any layer may import it.

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


def test_broker_settings_imports_the_standard_library_only():
    files = sorted((ROOT / "broker" / "settings").rglob("*.py"))
    assert files
    offenders = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in files
        for line, module in _imports(path)
        if not (module.startswith("broker.settings") or module.startswith("."))
        and (module.split(".")[0] not in sys.stdlib_module_names or module.split(".")[0] in IO_MODULES)
    ]
    assert offenders == []


def test_importing_broker_settings_imports_no_trio_and_no_other_broker_module():
    import subprocess

    code = (
        "import sys, broker.settings, broker.auth.passwords\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('trio', 'structlog', 'protocol', 'routing')"
        " or (m.startswith('broker.') and not m.startswith(('broker.settings', 'broker.auth'))))\n"
        "print(bad)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert done.stdout.strip() == "[]"
