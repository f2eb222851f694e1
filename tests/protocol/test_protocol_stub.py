"""protocol/methods.pyi is what `python -m protocol.stubgen` prints from SPEC."""

from pathlib import Path

from protocol import methods as m
from protocol.stubgen import render

STUB = Path(__file__).resolve().parents[2] / "protocol" / "methods.pyi"


def test_the_stub_is_generated_from_the_current_spec() -> None:
    assert STUB.read_text(encoding="utf-8") == render(), (
        "protocol/methods.pyi is stale: run `python -m protocol.stubgen > protocol/methods.pyi`"
    )


def test_the_stub_names_every_method_class() -> None:
    text = STUB.read_text(encoding="utf-8")
    for cls in m.METHODS.values():
        assert f"\nclass {cls.__name__}(Method):\n" in text
