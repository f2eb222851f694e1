"""The conformance runner's own parts: the matrix collector, known differences, URLs.

The collector is exercised on a real pytest run (in a subprocess) of a small
synthetic module whose outcomes are known: pass, fail, skip, xfail, a strict
xfail that passes, and a setup error.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from conformance import known
from conformance.admin import Admin, password_hash
from conformance.runner import ADMIN_URL_ENV, parse_args, redact

ROOT = Path(__file__).resolve().parents[2]

SYNTHETIC = '''
import pytest

AREA = "synthetic area"

@pytest.fixture
def broken():
    raise RuntimeError("setup fails")

def test_passes():
    assert True

def test_fails():
    assert False

def test_skips():
    pytest.skip("not here")

@pytest.mark.xfail(reason="known gap", strict=True)
def test_known_gap():
    assert False

@pytest.mark.xfail(reason="fixed already", strict=True)
def test_fixed_gap():
    assert True

def test_setup_error(broken):
    pass
'''

COLLECT = '''
import json, sys
import pytest
from conformance.matrix import MatrixCollector
collector = MatrixCollector()
pytest.main([sys.argv[1], "-q", "-p", "no:cacheprovider", "-c", sys.argv[2]], plugins=[collector])
print("JSON" + json.dumps({
    "rows": {r.test: [r.area, r.result] for r in collector.rows.values()},
    "summary": collector.summary_line(),
    "markdown": collector.as_markdown("T", "B"),
    "text": collector.as_text(),
}))
'''


def collect(tmp_path: Path) -> dict:
    (tmp_path / "test_synthetic.py").write_text(textwrap.dedent(SYNTHETIC))
    ini = tmp_path / "pytest.ini"
    ini.write_text("[pytest]\n")
    result = subprocess.run(
        [sys.executable, "-c", COLLECT, str(tmp_path), str(ini)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    line = next(line for line in result.stdout.splitlines() if line.startswith("JSON"))
    return json.loads(line[4:])


def test_matrix_records_every_outcome(tmp_path):
    report = collect(tmp_path)
    rows = report["rows"]
    assert rows == {
        "test_synthetic::test_passes": ["synthetic area", "pass"],
        "test_synthetic::test_fails": ["synthetic area", "fail"],
        "test_synthetic::test_skips": ["synthetic area", "skip"],
        "test_synthetic::test_known_gap": ["synthetic area", "xfail"],
        "test_synthetic::test_fixed_gap": ["synthetic area", "fail"],  # strict XPASS
        "test_synthetic::test_setup_error": ["synthetic area", "fail"],
    }
    assert report["summary"] == "1 pass, 3 fail, 1 xfail, 1 skip (6 tests)"


def test_matrix_renders_markdown_and_text(tmp_path):
    report = collect(tmp_path)
    markdown = report["markdown"]
    assert "| synthetic area | 1 | 3 | 1 | 1 |" in markdown
    assert "| synthetic area | `test_synthetic::test_known_gap` | xfail | known gap |" in markdown
    assert "Broker: B" in markdown
    text_lines = report["text"].splitlines()
    assert text_lines[0].split() == ["area", "test", "result"]
    assert any(line.split()[-1] == "xfail" for line in text_lines[2:])


def test_known_difference_lookup(monkeypatch):
    monkeypatch.setattr(
        known,
        "KNOWN_DIFFERENCES",
        {
            "test_ttl.py::test_a": ("not yet", 12),
            "test_topic.py::test_pattern[a-b]": ("one case", 13),
        },
    )
    assert known.known_difference("test_ttl.py::test_a") == ("not yet", 12)
    assert known.known_difference("test_ttl.py::test_a[param]") == ("not yet", 12)
    assert known.known_difference("test_topic.py::test_pattern[a-b]") == ("one case", 13)
    assert known.known_difference("test_topic.py::test_pattern[c-d]") is None
    assert known.known_difference("test_ttl.py::test_b") is None


def test_shipped_known_table_is_well_formed():
    for test_id, (reason, issue) in known.KNOWN_DIFFERENCES.items():
        module = test_id.split("::")[0]
        assert (ROOT / "conformance" / "tests" / module).is_file(), test_id
        assert reason and isinstance(issue, int), test_id


def test_redact_hides_the_password():
    assert redact("amqp://guest:secret@host:5672/vh") == "amqp://guest:***@host:5672/vh"
    assert redact("amqp://host/") == "amqp://host/"


def test_runner_takes_the_admin_url_from_the_option_or_the_environment(monkeypatch):
    monkeypatch.delenv(ADMIN_URL_ENV, raising=False)
    assert parse_args([]).admin_url is None
    assert parse_args(["--admin-url", "http://a:b@h:1/"]).admin_url == "http://a:b@h:1/"
    monkeypatch.setenv(ADMIN_URL_ENV, "http://c:d@h:2/")
    assert parse_args([]).admin_url == "http://c:d@h:2/"


def test_admin_client_builds_the_api_base_and_credentials():
    admin = Admin("http://user:pa%3Ass@127.0.0.1:15673/")
    assert admin.base == "http://127.0.0.1:15673/api"
    assert admin._authorization == "Basic " + base64.b64encode(b"user:pa:ss").decode()
    assert Admin("http://h:1/prefix/").base == "http://h:1/prefix/api"


def test_password_hash_matches_rabbitmq():
    # Computed by RabbitMQ 3.10.8 itself (rabbit_password:salted_hash/3), salt 90 8d c6 0a.
    salt = bytes.fromhex("908dc60a")
    expected = {
        "rabbit_password_hashing_sha256": "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR",
        "rabbit_password_hashing_sha512": "kI3GChuNuIYf8lRbCCxZjgjKwsY19ns6+uFO0zcXRBGA/XGJPYD8OWMy"
        "7EB8TaOmAzjP2azv84GbINYwX2cDWb4DHnc=",
        "rabbit_password_hashing_md5": "kI3GChNpte2FApYFXScl+0dIluk=",
    }
    for algorithm, stored in expected.items():
        assert password_hash("test12", algorithm, salt) == stored


def test_access_control_area_is_skipped_without_an_admin_url():
    """Without a management API (Warren's CI today) the area skips, and says why."""
    env = {k: v for k, v in os.environ.items() if k != ADMIN_URL_ENV}
    tests = ROOT / "conformance" / "tests"
    result = subprocess.run(
        [
            sys.executable, "-m", "pytest", str(tests / "test_access_control.py"),
            "--amqp-url=amqp://guest:guest@127.0.0.1:1/", "-p", "no:cacheprovider",
            "-q", "-rs", "--rootdir", str(tests), "-c", os.devnull, "-o", "addopts=",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    last = result.stdout.strip().splitlines()[-1]
    assert " skipped" in last and "passed" not in last and "failed" not in last, last
    assert "--admin-url" in result.stdout and ADMIN_URL_ENV in result.stdout
