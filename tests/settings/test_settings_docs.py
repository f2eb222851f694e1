"""docs/settings.md says what the code does: every key, the error example, the example file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from broker.settings import KEYS, SettingsError, load_settings, parse_settings
from broker.settings.rabbitmq_keys import RABBITMQ_KEYS

DOC = (Path(__file__).resolve().parents[2] / "docs" / "settings.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    start = DOC.index(f"\n## {title}\n")
    end = DOC.find("\n## ", start + 1)
    return DOC[start : end if end > 0 else None]


def code_blocks(text: str) -> list[str]:
    return re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S)


def test_every_key_is_documented_with_its_default():
    keys_section = section("Keys")
    for key in KEYS:
        assert re.search(rf"^\| `{re.escape(key.pattern)}` \|", keys_section, flags=re.M), key.pattern


def test_the_error_example_is_what_load_settings_says(tmp_path):
    conf, output = code_blocks(section("Errors"))
    text = conf.split("\n", 1)[1]  # after "$ cat rabbitmq.conf"
    path = tmp_path / "rabbitmq.conf"
    path.write_text(text)
    with pytest.raises(SettingsError) as excinfo:
        load_settings(path, environ={})
    assert str(excinfo.value).replace(f"{tmp_path}/", "") == output.strip()


def test_the_example_file_reads_as_documented(tmp_path):
    conf, lines = code_blocks(section("An example"))
    etc = tmp_path / "etc"
    (etc / "tls").mkdir(parents=True)
    for name in ("ca.pem", "server.pem", "server.key"):
        (etc / "tls" / name).write_text("x")
    (etc / "admin-password").write_text("s3cret\n")
    text = conf.replace("/etc/warren", str(etc)).replace("/var/lib/warren", str(tmp_path / "var"))
    settings = parse_settings(text, etc / "rabbitmq.conf", environ={})
    assert settings.default_pass == "s3cret"
    expected = lines.replace("/etc/warren", str(etc)).replace("/var/lib/warren", str(tmp_path / "var"))
    assert settings.to_lines() == expected.strip().split("\n")


def test_the_keys_warren_does_not_have_are_rabbitmqs_and_refused():
    listed = re.findall(r"`([a-z_]+(?:\.[A-Za-z_$]+)*)`", section("RabbitMQ keys Warren does not have"))
    ours = {k.pattern for k in KEYS}
    named = [k for k in listed if k not in ours]
    assert len(named) > 60
    for key in named:
        assert key in RABBITMQ_KEYS, key
        concrete = key.replace("$name", "x").replace("$cipher", "x")
        with pytest.raises(SettingsError, match="a RabbitMQ setting that Warren does not have"):
            parse_settings(f"{concrete} = 1\n", environ={})
