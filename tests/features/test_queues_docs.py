"""docs/queues.md's examples, run as written against the test broker.

Each ```python block runs with the page's URL replaced by the test broker's;
what it prints must be what the `# ...` comments after its print() calls
say (joined with ", " where a print runs in a loop).
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

DOC = (Path(__file__).resolve().parents[2] / "docs" / "queues.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```python\n(.*?)```", DOC, re.S)
PAGE_URL = "amqp://guest:guest@127.0.0.1:5672/"


def test_the_page_has_examples() -> None:
    assert len(BLOCKS) >= 4


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_example_runs_as_written(warren_url: str, index: int) -> None:
    source = BLOCKS[index]
    assert PAGE_URL in source
    expected = [m.strip() for m in re.findall(r"^\s*print\(.*\)\s*#\s*(.*)$", source, re.M)]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(source.replace(PAGE_URL, warren_url), f"queues.md[{index}]", "exec"), {})
    printed = out.getvalue().splitlines()
    assert ", ".join(printed) == ", ".join(expected)
