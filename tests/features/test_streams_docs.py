"""docs/streams.md's worked example (replay an event stream from a
timestamp) prints what the page says, run against a Warren of its own."""

from __future__ import annotations

import re
from pathlib import Path

from doc_examples import run_example

DOC = Path(__file__).parents[2] / "docs" / "streams.md"
DOC_URL = "amqp://guest:guest@127.0.0.1:5672/"


def test_the_replay_example_prints_what_the_page_shows(fresh_warren_url: str) -> None:
    text = DOC.read_text()
    (script,) = [block for block in re.findall(r"^```python\n(.*?)^```$", text, re.S | re.M)
                 if DOC_URL in block]  # fmt: skip
    assert DOC_URL in script
    (expected,) = re.findall(r"^prints, on Warren:\n\n```\n(.*?)^```$", text, re.S | re.M)
    assert run_example(script, DOC_URL, fresh_warren_url) == expected
