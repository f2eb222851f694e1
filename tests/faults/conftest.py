"""The fault tests reuse the broker tests' raw client and the durability
tests' raw pipelining publisher."""

import sys
from pathlib import Path

for _helpers in ("durability", "broker"):
    _path = str(Path(__file__).resolve().parent.parent / _helpers)
    if _path not in sys.path:
        sys.path.append(_path)
