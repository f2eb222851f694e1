"""The exact text an operator sees for each kind of mistake."""

from __future__ import annotations

import pytest

from routing import config

HEADER = "exchange orders type topic durable\nqueue billing durable\n"


def errors(text: str) -> list[str]:
    return [str(e) for e in config.check(text, "orders.conf")]


def only_error(text: str) -> str:
    found = errors(text)
    assert len(found) == 1, found
    return found[0]


def test_unknown_exchange_type_did_you_mean() -> None:
    assert only_error("exchange orders type topik durable\n") == (
        "orders.conf:1:22: unknown exchange type 'topik': did you mean 'topic'?\n"
        "    exchange orders type topik durable\n"
        "                         ^^^^^"
    )


def test_binding_to_undeclared_exchange() -> None:
    assert only_error(HEADER + 'bind billing to order key "order.*"\n') == (
        "orders.conf:3:17: exchange 'order' is not declared: did you mean 'orders'?\n"
        '    bind billing to order key "order.*"\n'
        "                    ^^^^^"
    )


def test_binding_an_undeclared_queue() -> None:
    assert only_error(HEADER + "bind invoices to orders\n") == (
        "orders.conf:3:6: queue 'invoices' is not declared\n"
        "    bind invoices to orders\n"
        "         ^^^^^^^^\n"
        "    hint: declare it with: queue invoices"
    )


def test_negative_ttl() -> None:
    assert only_error("queue billing message-ttl -5s\n") == (
        "orders.conf:1:27: message-ttl must not be negative, got '-5s'\n"
        "    queue billing message-ttl -5s\n"
        "                              ^^^"
    )


def test_bad_duration_unit() -> None:
    assert only_error("queue billing\n    expires 5min\n") == (
        "orders.conf:2:13: expires takes a duration, not '5min'\n"
        "        expires 5min\n"
        "                ^^^^\n"
        "    hint: write a whole number with a unit: ms, s, m, h or d (e.g. 30s, 5m)"
    )


def test_duplicate_queue() -> None:
    assert only_error("queue billing durable\n\nqueue billing\n") == (
        "orders.conf:3:7: queue 'billing' is declared twice\n"
        "    queue billing\n"
        "          ^^^^^^^\n"
        "    hint: the first declaration is at line 1; keep one"
    )


def test_argument_of_the_wrong_type() -> None:
    assert only_error("queue billing max-length ten\n") == (
        "orders.conf:1:26: max-length takes a whole number, not 'ten'\n"
        "    queue billing max-length ten\n"
        "                             ^^^"
    )


def test_raw_x_argument_is_checked_like_its_option() -> None:
    assert only_error('queue billing x-max-priority "high"\n') == (
        "orders.conf:1:30: x-max-priority takes a whole number, not 'high'\n"
        '    queue billing x-max-priority "high"\n'
        "                                 ^^^^^^"
    )


def test_out_of_range() -> None:
    assert only_error("queue billing max-priority 300\n") == (
        "orders.conf:1:28: max-priority must be at most 255, got '300'\n"
        "    queue billing max-priority 300\n"
        "                               ^^^"
    )


def test_misspelt_option() -> None:
    assert only_error("exchange orders type topic durabel\n") == (
        "orders.conf:1:28: unknown exchange option 'durabel': did you mean 'durable'?\n"
        "    exchange orders type topic durabel\n"
        "                               ^^^^^^^\n"
        "    hint: exchange options: type, durable, auto-delete, internal, "
        "alternate-exchange, hash-header, hash-property, delayed-type, cache-size, cache-ttl, "
        "deduplication-header, x-<argument> <value>"
    )


def test_misspelt_statement() -> None:
    assert only_error("exchnage orders type topic\n") == (
        "orders.conf:1:1: unknown statement 'exchnage': did you mean 'exchange'?\n"
        "    exchnage orders type topic\n"
        "    ^^^^^^^^\n"
        "    hint: statements start with exchange, queue, bind, vhost, user, permission, "
        "topic-permission, limit, policy or operator-policy"
    )


def test_missing_to() -> None:
    assert only_error(HEADER + "bind billing orders\n") == (
        "orders.conf:3:14: expected 'to', found 'orders'\n"
        "    bind billing orders\n"
        "                 ^^^^^^\n"
        "    hint: bind [exchange] <destination> to <exchange> [key <routing key>] ..."
    )


def test_unterminated_string() -> None:
    assert only_error(HEADER + 'bind billing to orders key "order.#\n') == (
        "orders.conf:3:28: unterminated string\n"
        '    bind billing to orders key "order.#\n'
        "                               ^\n"
        '    hint: add the closing " on the same line'
    )


def test_unknown_overflow_mode() -> None:
    assert only_error("queue billing overflow drop-tail\n") == (
        "orders.conf:1:24: unknown overflow 'drop-tail': did you mean 'drop-head'?\n"
        "    queue billing overflow drop-tail\n"
        "                           ^^^^^^^^^\n"
        "    hint: overflow is one of: drop-head, reject-publish, reject-publish-dlx"
    )


def test_unknown_match_mode() -> None:
    text = (
        "exchange tagged type headers\nqueue audit\nbind audit to tagged headers al format=json\n"
    )
    assert only_error(text) == (
        "orders.conf:3:30: unknown match mode 'al': did you mean 'all'?\n"
        "    bind audit to tagged headers al format=json\n"
        "                                 ^^\n"
        "    hint: headers match all, any, all-with-x or any-with-x"
    )


def test_default_exchange_cannot_be_bound() -> None:
    assert only_error('queue billing\nbind billing to "" key "billing"\n') == (
        "orders.conf:2:17: nothing can be bound to the default exchange\n"
        '    bind billing to "" key "billing"\n'
        "                    ^^\n"
        "    hint: it already reaches every queue by the queue's name"
    )


def test_missing_exchange_type() -> None:
    assert only_error("exchange orders durable\n") == (
        "orders.conf:1:10: exchange 'orders' needs a type\n"
        "    exchange orders durable\n"
        "             ^^^^^^\n"
        "    hint: add 'type direct', 'type fanout', 'type topic' or 'type headers'"
    )


def test_undeclared_dead_letter_exchange() -> None:
    text = "exchange orders.dlx type fanout\nqueue billing dead-letter-exchange orders.dlq\n"
    assert only_error(text) == (
        "orders.conf:2:36: dead-letter exchange 'orders.dlq' is not declared: "
        "did you mean 'orders.dlx'?\n"
        "    queue billing dead-letter-exchange orders.dlq\n"
        "                                       ^^^^^^^^^^"
    )


def test_statement_swallowed_by_indentation() -> None:
    assert only_error("queue billing durable\n    bind billing to orders\n") == (
        "orders.conf:2:5: unexpected 'bind' inside a queue statement\n"
        "        bind billing to orders\n"
        "        ^^^^\n"
        "    hint: a statement starts at the beginning of a line; an indented line "
        "continues the statement above it"
    )


def test_exclusive_queue() -> None:
    assert only_error("queue billing exclusive\n") == (
        "orders.conf:1:15: a queue in a configuration file cannot be exclusive\n"
        "    queue billing exclusive\n"
        "                  ^^^^^^^^^\n"
        "    hint: exclusive queues belong to the connection that declares them"
    )


def test_all_errors_at_once_in_file_order() -> None:
    text = (
        "exchange orders type topik\n"
        "queue billing message-ttl -1s\n"
        "bind billing orders\n"
        "queue billing\n"
        "bind billing to nowhere\n"
    )
    found = config.check(text, "orders.conf")
    assert [(e.line, e.column) for e in found] == [(1, 22), (2, 27), (3, 14), (4, 7), (5, 17)]
    with pytest.raises(config.ConfigErrors) as info:
        config.parse(text, "orders.conf")
    assert len(info.value.errors) == 5
    assert str(info.value).endswith("\n5 errors")


def test_tabs_keep_the_caret_under_the_problem() -> None:
    assert only_error("queue billing\n\tmax-length ten\n") == (
        "orders.conf:2:13: max-length takes a whole number, not 'ten'\n"
        "        max-length ten\n"
        "                   ^^^"
    )


def test_routing_key_longer_than_a_short_string() -> None:
    key = "k" * 256
    text = HEADER + f'bind billing to orders key "{key}"\n'
    assert only_error(text) == (
        "orders.conf:3:28: routing key is 256 bytes long; AMQP allows at most 255\n"
        f'    bind billing to orders key "{key}"\n'
        "                               " + "^" * (len(key) + 2) + "\n"
        "    hint: names and routing keys are short strings (AMQP 0-9-1 section 4.2.5.3)"
    )


def test_missing_value_after_equals() -> None:
    text = "exchange tagged type headers\nqueue audit\nbind audit to tagged headers all format=\n"
    assert only_error(text) == (
        "orders.conf:3:40: a value is missing after '='\n"
        "    bind audit to tagged headers all format=\n"
        "                                           ^\n"
        '    hint: as in format=json; "" is empty'
    )


def test_an_integer_wider_than_amqp_carries() -> None:
    assert only_error("queue billing\n    x-wide 99999999999999999999999\n") == (
        "orders.conf:2:12: integer 99999999999999999999999 does not fit an AMQP field value\n"
        "        x-wide 99999999999999999999999\n"
        "               ^^^^^^^^^^^^^^^^^^^^^^^\n"
        "    hint: AMQP integers are 64 bits wide: -9223372036854775808 to "
        "18446744073709551615; quote it to send a string"
    )


def test_wide_integers_in_bindings_and_counts() -> None:
    text = (
        "exchange tagged type headers\nqueue audit max-length 18446744073709551616\n"
        "bind audit to tagged headers all n=18446744073709551616 argument m -9223372036854775809\n"
    )
    assert errors(text) == [
        "orders.conf:2:24: max-length must be at most 18446744073709551615, got "
        "'18446744073709551616'\n"
        "    queue audit max-length 18446744073709551616\n"
        "                           ^^^^^^^^^^^^^^^^^^^^\n"
        "    hint: AMQP integers are 64 bits wide: -9223372036854775808 to 18446744073709551615",
        "orders.conf:3:36: integer 18446744073709551616 does not fit an AMQP field value\n"
        "    bind audit to tagged headers all n=18446744073709551616 argument m "
        "-9223372036854775809\n"
        "                                       ^^^^^^^^^^^^^^^^^^^^\n"
        "    hint: AMQP integers are 64 bits wide: -9223372036854775808 to "
        "18446744073709551615; quote it to send a string",
        "orders.conf:3:68: integer -9223372036854775809 does not fit an AMQP field value\n"
        "    bind audit to tagged headers all n=18446744073709551616 argument m "
        "-9223372036854775809\n"
        "                                                                       "
        "^^^^^^^^^^^^^^^^^^^^\n"
        "    hint: AMQP integers are 64 bits wide: -9223372036854775808 to "
        "18446744073709551615; quote it to send a string",
    ]


def test_a_quoted_wide_number_is_a_string() -> None:
    m = config.parse('queue billing x-wide "99999999999999999999999"\n')
    assert m.queues[0].arguments == {"x-wide": "99999999999999999999999"}


@pytest.mark.parametrize(
    ("written", "message"),
    [
        # int() refuses strings of over 4,300 digits: never a traceback.
        ("x-a " + "9" * 5000, "integer " + "9" * 5000 + " does not fit an AMQP field value"),
        ("max-length " + "9" * 5000, "max-length must be at most 18446744073709551615, got '"),
        ("message-ttl " + "9" * 400 + "d", "message-ttl must be at most 3650d, got '"),
        ("max-length-bytes " + "9" * 5000 + "GiB", "max-length-bytes must be at most 1844"),
        ("x-f 1e400", "number 1e400 does not fit a 64-bit float"),
    ],
)
def test_huge_numbers_are_errors_not_crashes(written: str, message: str) -> None:
    assert only_error(f"queue billing {written}\n").startswith("orders.conf:1:"), written
    assert message in only_error(f"queue billing {written}\n")


def test_ttl_beyond_ten_years() -> None:
    assert only_error("queue billing message-ttl 3651d\n") == (
        "orders.conf:1:27: message-ttl must be at most 3650d, got '3651d'\n"
        "    queue billing message-ttl 3651d\n"
        "                              ^^^^^"
    )
