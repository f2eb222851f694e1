"""docs/config-language.md says what the code does: every `conf` block in it
is a file `warren config check` accepts, written in canonical form."""

from __future__ import annotations

import re
from pathlib import Path

from routing import config
from routing.topology import Topology

DOC = Path(__file__).parents[2] / "docs" / "config-language.md"


def conf_blocks() -> list[tuple[int, str]]:
    """(line, text) of every ```conf block."""
    text = DOC.read_text()
    return [
        (text[: m.start()].count("\n") + 1, m.group(1))
        for m in re.finditer(r"^```conf\n(.*?)^```$", text, re.S | re.M)
    ]


def test_the_docs_conf_blocks_are_valid_and_canonical() -> None:
    blocks = conf_blocks()
    assert len(blocks) >= 2  # the access example and the order pipeline
    for line, block in blocks:
        name = f"{DOC.name}:{line}"
        assert config.check(block, name) == [], name
        model = config.parse(block, name)
        assert config.format(model) == block, name
        model.apply_to(Topology())


def test_the_access_example_declares_every_kind_of_statement() -> None:
    (access,) = [block for _, block in conf_blocks() if block.lstrip().startswith("# Access")]
    model = config.parse(access)
    assert model.vhosts and model.users and model.permissions
    assert model.topic_permissions and model.limits and model.topology


POLICIES_DOC = Path(__file__).parents[2] / "docs" / "policies.md"


def test_the_policies_page_example_is_valid_and_canonical() -> None:
    text = POLICIES_DOC.read_text()
    blocks = re.findall(r"^```conf\n(.*?)^```$", text, re.S | re.M)
    assert len(blocks) == 1
    assert config.check(blocks[0], "policies.md") == []
    model = config.parse(blocks[0])
    assert config.format(model) == blocks[0]
    assert [p.keyword for p in model.policies] == ["policy", "policy", "operator-policy"]


def test_the_policies_page_lists_every_refused_setting() -> None:
    from routing.config.options import POLICY_REFUSED

    text = POLICIES_DOC.read_text()
    table = text[text.index("**Refused settings.**"):text.index("## Precedence")]
    table = table[:table.index("A setting neither knows")]
    assert set(re.findall(r"`([a-z-]+)`", table)) == set(POLICY_REFUSED)
