"""broker.settings.parser: the rabbitmq.conf syntax, as RabbitMQ 3.10's cuttlefish reads it.

Where a test says "cuttlefish", the behaviour was checked with the cuttlefish
3.0.1 that RabbitMQ 3.10.8 ships, on the same input.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.settings import SettingsError, load_settings, parse_settings
from broker.settings.parser import Entry, parse_text, read_files, split_key, substitute


def entries(text: str) -> list[tuple[str, str]]:
    items, problems = parse_text(text, "t.conf")
    assert problems == []
    return [(item.name, item.value) for item in items if isinstance(item, Entry)]


def problems(text: str) -> list[str]:
    _, found = parse_text(text, "t.conf")
    return [str(p) for p in found]


def test_comments_blank_lines_and_whitespace():
    text = "# a comment\n\n   \t\n  # indented comment\n\theartbeat\t=\t30  \nchannel_max=7\n"
    assert entries(text) == [("heartbeat", "30"), ("channel_max", "7")]


def test_crlf_line_ends_and_no_final_newline():
    assert entries("heartbeat = 5\r\nchannel_max = 7\r\n") == [("heartbeat", "5"), ("channel_max", "7")]
    # cuttlefish keeps the trailing spaces of a last line without a newline
    # ("7   " then fails as an integer); Warren strips them.
    assert entries("heartbeat = 5\nchannel_max = 7   ") == [("heartbeat", "5"), ("channel_max", "7")]


def test_values_keep_inner_spaces_and_equals_signs():
    assert entries("default_vhost = my vhost   \ndefault_pass = a = b\n") == [
        ("default_vhost", "my vhost"),
        ("default_pass", "a = b"),
    ]


def test_a_hash_ends_an_unquoted_value_anywhere():
    # cuttlefish: "abc#def" is "abc"; "5672#x" is 5672
    assert entries("default_pass = abc#def\nlisteners.tcp.1 = 5672#x\nheartbeat = 5 # five\n") == [
        ("default_pass", "abc"),
        ("listeners.tcp.1", "5672"),
        ("heartbeat", "5"),
    ]


def test_single_quotes_keep_a_hash_and_spaces():
    assert entries("default_pass = 'a#b c '  # comment\ndefault_user = ''\n") == [
        ("default_pass", "a#b c "),
        ("default_user", ""),
    ]
    items, _ = parse_text("default_pass = '$(X)'\n", "t.conf")
    assert isinstance(items[0], Entry) and items[0].literal


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("default_pass = 'abc#def", "unterminated single quote"),
        ("default_pass = 'it''s'", "unexpected text after the closing quote"),
        ("default_pass = 'a' b", "unexpected text after the closing quote"),
        ("default_pass =", "no value after '='"),
        ("default_pass =   # nothing", "no value after '='"),
        ("heartbeat", "expected 'key = value', got 'heartbeat'"),
        ("heartbeat 5", "expected 'key = value'"),
        ("loopback_users.bob@example = true", "'loopback_users.bob@example' is not a key"),
        ("listeners..tcp = none", "is not a key"),
        (".heartbeat = 5", "is not a key"),
        ("= 5", "no key before '='"),
        ("include my file.conf", "include takes one path"),
    ],
)
def test_syntax_errors_name_the_line(line, message):
    found = problems(f"heartbeat = 5\n{line}\n")
    assert len(found) == 1
    assert found[0].startswith("t.conf:2: ")
    assert message in found[0]


def test_every_syntax_error_of_a_file_is_reported():
    found = problems("one\nheartbeat = 5\ntwo\nthree = 'x\n")
    assert [f.split(":")[1] for f in found] == ["1", "3", "4"]


def test_escaped_dots_stay_inside_a_key_part():
    assert split_key("loopback_users.my\\.user") == ("loopback_users", "my.user")
    items, _ = parse_text("loopback_users.my\\.user = true\n", "t.conf")
    assert isinstance(items[0], Entry)
    assert items[0].key == ("loopback_users", "my.user")
    assert items[0].name == "loopback_users.my\\.user"


def test_keys_may_use_dashes_underscores_and_digits():
    assert entries("listeners.tcp.my-listener_2 = 5672\n") == [("listeners.tcp.my-listener_2", "5672")]


def test_a_key_named_include_is_a_setting_not_an_include():
    assert entries("include = 5\n") == [("include", "5")]


def test_unicode_values(tmp_path):
    path = tmp_path / "rabbitmq.conf"
    path.write_bytes("default_user = Jürgen ✓\n".encode())
    assert load_settings(path, environ={}).default_user == "Jürgen ✓"


def test_a_file_that_is_not_utf8_is_an_error(tmp_path):
    path = tmp_path / "rabbitmq.conf"
    path.write_bytes(b"heartbeat = 5\ndefault_user = J\xfcrgen\n")
    with pytest.raises(SettingsError) as excinfo:
        load_settings(path, environ={})
    assert str(excinfo.value) == f"{path}:2: not UTF-8 text"


def test_a_missing_file_is_an_error(tmp_path):
    with pytest.raises(SettingsError, match="cannot read"):
        load_settings(tmp_path / "nope.conf")


# -- include ---------------------------------------------------------------------


def test_include_reads_files_relative_to_the_including_file_in_name_order(tmp_path):
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "20-b.conf").write_text("listeners.tcp.b = 5674\n")
    (tmp_path / "conf.d" / "10-a.conf").write_text("listeners.tcp.a = 5673\n")
    (tmp_path / "conf.d" / "notes.txt").write_text("not read\n")
    main = tmp_path / "rabbitmq.conf"
    main.write_text("listeners.tcp.first = 5672\ninclude conf.d/*.conf\nheartbeat = 5\n")
    found, errors = read_files(main)
    assert errors == []
    assert [(e.name, e.value) for e in found] == [
        ("listeners.tcp.first", "5672"),
        ("listeners.tcp.a", "5673"),
        ("listeners.tcp.b", "5674"),
        ("heartbeat", "5"),
    ]
    assert [p.port for p in load_settings(main, environ={}).listeners_tcp] == [5672, 5673, 5674]


def test_an_include_pattern_that_matches_nothing_is_fine(tmp_path):
    (tmp_path / "conf.d").mkdir()
    main = tmp_path / "rabbitmq.conf"
    main.write_text("include conf.d/*.conf\n")
    assert load_settings(main, environ={}) == load_settings(main, environ={})


def test_an_included_file_that_does_not_exist_is_an_error(tmp_path):
    main = tmp_path / "rabbitmq.conf"
    main.write_text("heartbeat = 5\ninclude extra.conf\n")
    with pytest.raises(SettingsError) as excinfo:
        load_settings(main, environ={})
    assert str(excinfo.value).startswith(f"{main}:2: cannot read {tmp_path}/extra.conf")


def test_problems_in_an_included_file_name_that_file(tmp_path):
    (tmp_path / "tls.conf").write_text("\nssl_options.verify = sometimes\n")
    main = tmp_path / "rabbitmq.conf"
    main.write_text("heartbeat = x\ninclude tls.conf\n")
    with pytest.raises(SettingsError) as excinfo:
        load_settings(main, environ={})
    assert [str(p).split(": ")[0] for p in excinfo.value.problems] == [f"{main}:1", f"{tmp_path}/tls.conf:2"]


def test_an_include_cycle_is_an_error(tmp_path):
    (tmp_path / "a.conf").write_text("include b.conf\n")
    (tmp_path / "b.conf").write_text("heartbeat = 5\ninclude a.conf\n")
    with pytest.raises(SettingsError, match="includes itself"):
        load_settings(tmp_path / "a.conf", environ={})


# -- $(<FILE) and $(NAME) -----------------------------------------------------------


def test_value_from_a_file_relative_to_the_settings_file(tmp_path):
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "pass").write_text("s3cr#t $(not expanded)\n")
    main = tmp_path / "rabbitmq.conf"
    main.write_text("default_pass = $(<secrets/pass)\ndefault_user = $(<  secrets/pass )\n")
    settings = load_settings(main, environ={})
    # the file's content is taken as it is: no '#' comment, no $(...) expansion
    assert settings.default_pass == settings.default_user == "s3cr#t $(not expanded)"
    # "$( <" is not the file form: cuttlefish reads it as a substitution of "<  secrets/pass"
    main.write_text("default_pass = $( <secrets/pass)\n")
    with pytest.raises(SettingsError, match="no key"):
        load_settings(main, environ={})


def test_value_from_a_file_strips_one_line_break_only(tmp_path):
    for content, expected in [("pw\r\n", "pw"), ("pw\n\n", "pw\n"), ("pw", "pw"), (" pw \n", " pw ")]:
        (tmp_path / "pass").write_text(content, newline="")
        main = tmp_path / "rabbitmq.conf"
        main.write_text(f"default_pass = $(<{tmp_path}/pass)\n")
        assert load_settings(main, environ={}).default_pass == expected


def test_value_from_a_missing_file_is_an_error(tmp_path):
    main = tmp_path / "rabbitmq.conf"
    main.write_text("heartbeat = 5\ndefault_pass = $(<nope)\n")
    with pytest.raises(SettingsError) as excinfo:
        load_settings(main, environ={})
    assert str(excinfo.value).startswith(f"{main}:2: default_pass: cannot read {tmp_path}/nope")


def test_substitution_from_another_key_or_the_environment():
    settings = parse_settings(
        "default_user = $(ADMIN)\n"
        "default_vhost = $(default_user)-vhost\n"
        "default_pass = pre-$(SUFFIX)-$(SUFFIX)\n",
        environ={"ADMIN": "alice", "SUFFIX": "x"},
    )
    assert (settings.default_user, settings.default_vhost, settings.default_pass) == (
        "alice",
        "alice-vhost",
        "pre-x-x",
    )


def test_a_key_of_the_file_wins_over_an_environment_variable():
    settings = parse_settings("heartbeat = 7\nchannel_max = $(heartbeat)\n", environ={"heartbeat": "9"})
    assert settings.channel_max == 7


def test_substitution_of_a_missing_name_is_an_error():
    with pytest.raises(SettingsError) as excinfo:
        parse_settings("heartbeat = 5\ndefault_pass = ab$(cd)\n", "rabbitmq.conf", environ={})
    assert str(excinfo.value).startswith("rabbitmq.conf:2: default_pass: $(cd): no key 'cd'")


def test_substitution_cycles_are_errors():
    with pytest.raises(SettingsError, match="refers back to itself"):
        parse_settings("default_user = $(default_pass)\ndefault_pass = $(default_user)\n", environ={})


def test_quoted_values_are_not_substituted():
    settings = parse_settings("default_pass = 'a$(b)c'\n", environ={})
    assert settings.default_pass == "a$(b)c"


def test_a_dollar_without_parenthesis_is_literal():
    settings = parse_settings("default_pass = a$b)$(c\n", environ={})
    assert settings.default_pass == "a$b)$(c"


def test_substitute_keeps_entries_without_expansions_as_they_are():
    items = [Entry("t.conf", 1, ("heartbeat",), "5")]
    assert substitute(items, {}) == (items, [])


# -- properties ---------------------------------------------------------------------

words = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-", min_size=1, max_size=8)
plain_values = st.text(
    alphabet=st.characters(blacklist_characters="#\n\r'", blacklist_categories=("Cs", "Cc")),
    min_size=1,
    max_size=30,
).map(lambda s: s.strip(" \t")).filter(bool)


@given(key=st.lists(words, min_size=1, max_size=4), value=plain_values, pad=st.sampled_from(["", " ", "\t", "  \t"]))
def test_property_key_value_lines_round_trip(key, value, pad):
    line = f"{pad}{'.'.join(key)}{pad}={pad}{value}{pad}"
    items, found = parse_text(line + "\n", "t.conf")
    assert found == []
    assert isinstance(items[0], Entry)
    assert (items[0].key, items[0].value) == (tuple(key), value)


@given(value=st.text(alphabet=st.characters(blacklist_characters="'\n\r", blacklist_categories=("Cs",)), max_size=30))
def test_property_any_quoted_value_round_trips(value):
    items, found = parse_text(f"k = '{value}'  # c\n", "t.conf")
    assert found == []
    assert isinstance(items[0], Entry) and items[0].value == value and items[0].literal


@given(text=st.text(max_size=200))
def test_property_parse_text_never_raises(text):
    items, found = parse_text(text, "t.conf")
    for problem in found:
        assert str(problem).startswith("t.conf:")


def test_settings_error_lists_problems_one_per_line():
    with pytest.raises(SettingsError) as excinfo:
        parse_settings("a\nb\n", "x.conf")
    assert str(excinfo.value).split("\n") == [str(p) for p in excinfo.value.problems]
    assert isinstance(excinfo.value, ValueError)
    assert os.fspath("x.conf") in str(excinfo.value)
