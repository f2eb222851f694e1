"""x-delayed-message in the configuration language and in definitions JSON:
the ``delayed-type`` option, its errors, and round trips both ways."""

from __future__ import annotations

import pytest

from routing.config import (
    DefinitionsError,
    format_config,
    from_definitions,
    parse_config,
    to_definitions,
)

TEXT = """\
exchange later type x-delayed-message durable
    delayed-type topic

queue out durable
bind out to later key "a.*"
"""


def test_the_delayed_type_option_round_trips_through_text_and_definitions() -> None:
    config, errors = parse_config(TEXT)
    assert errors == []
    (exchange,) = config.exchanges
    assert (exchange.type, exchange.arguments) == ("x-delayed-message", {"x-delayed-type": "topic"})
    assert format_config(config) == TEXT
    definitions = to_definitions(config)
    assert definitions["exchanges"] == [
        {"name": "later", "vhost": "/", "type": "x-delayed-message", "durable": True,
         "auto_delete": False, "internal": False, "arguments": {"x-delayed-type": "topic"}}
    ]
    again = from_definitions(definitions)
    assert again.exchanges == config.exchanges
    assert "delayed-type topic" in format_config(again)


def test_argument_form_is_the_same_exchange() -> None:
    written, _ = parse_config(
        "exchange later type x-delayed-message durable argument x-delayed-type topic\n"
    )
    assert written.exchanges == parse_config(TEXT)[0].exchanges


@pytest.mark.parametrize(
    "text, message",
    [
        ("exchange x type x-delayed-message\n",
         "an x-delayed-message exchange needs a delayed-type"),
        ("exchange x type x-delayed-message delayed-type nope\n", "unknown delayed-type 'nope'"),
        ("exchange x type direct delayed-type topic\n",
         "delayed-type is an option of x-delayed-message exchanges, and 'x' is type direct"),
        ("exchange x type x-delayed-message argument x-delayed-type x-delayed-message\n",
         "Invalid argument, 'x-delayed-message' can't be used for 'x-delayed-type' "
         "(406 PRECONDITION_FAILED)"),
        ("exchange x type x-delayed-message argument x-delayed-type foo\n",
         "unknown exchange type 'foo' (503 COMMAND_INVALID)"),
        ("exchange x type x-delayed-message argument x-delayed-type x-consistent-hash\n",
         "'x-delayed-type' 'x-consistent-hash' is not supported by Warren's x-delayed-message"),
    ],
)
def test_errors(text: str, message: str) -> None:
    _, errors = parse_config(text)
    assert len(errors) == 1, errors
    assert message in str(errors[0])


def test_other_types_take_x_delayed_type_as_a_plain_argument() -> None:
    config, errors = parse_config("exchange x type direct argument x-delayed-type foo\n")
    assert errors == []
    assert config.exchanges[0].arguments == {"x-delayed-type": "foo"}
    text = format_config(config)
    assert "    x-delayed-type foo" in text  # X-NAME VALUE
    assert parse_config(text)[0] == config


def test_definitions_refuse_what_the_broker_would() -> None:
    definitions = {
        "exchanges": [{"name": "x", "vhost": "/", "type": "x-delayed-message", "durable": True,
                       "auto_delete": False, "internal": False, "arguments": {}}],
    }
    with pytest.raises(DefinitionsError) as info:
        from_definitions(definitions)
    assert "'x-delayed-type' must be an existing exchange type" in str(info.value)
