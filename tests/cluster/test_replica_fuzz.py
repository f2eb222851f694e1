"""The replication stream's parsers against anything (hypothesis): file operations
and batches decode what was encoded, and garbage is a ValueError or ProtocolError,
never a crash or a path outside the data directory."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.cluster.wire import ProtocolError, decode_batch, encode_batch
from broker.storage.replica import (
    DELETE,
    MKDIR,
    RENAME,
    REPLACE,
    RESET,
    RMTREE,
    WRITE,
    Applier,
    FileOp,
    Manifest,
    decode_ops,
    encode_ops,
)

_names = st.text(st.characters(whitelist_categories=("Ll", "Nd")), min_size=1, max_size=8)
paths = st.lists(_names, min_size=1, max_size=3).map("/".join)
ops = st.one_of(
    st.builds(FileOp, st.sampled_from([WRITE, RESET, REPLACE, DELETE, RMTREE, MKDIR]),
              paths, st.integers(0, 2**40), st.binary(max_size=64)),
    st.builds(FileOp, st.just(RENAME), paths, st.just(0), paths.map(str.encode)),  # a target path
)


@given(st.lists(ops, max_size=20))
def test_operations_round_trip(operations: list[FileOp]) -> None:
    assert decode_ops(encode_ops(operations)) == operations


@given(st.binary(max_size=300))
def test_garbage_is_refused_cleanly(data: bytes) -> None:
    try:
        decoded = decode_ops(data)
    except ValueError:
        return
    for op in decoded:
        assert not op.path.startswith("/") and ".." not in op.path.split("/")


@given(st.integers(0, 2**63), st.integers(0, 2**63), st.lists(ops, max_size=5))
def test_batches_round_trip(batch: int, seq: int, operations: list[FileOp]) -> None:
    frame = encode_batch(batch, seq, encode_ops(operations))
    got_batch, got_seq, body = decode_batch(frame[5:])
    assert (got_batch, got_seq, decode_ops(body)) == (batch, seq, operations)


@pytest.mark.parametrize("path", ["../etc/passwd", "/etc/passwd", "a/../../b", "a//b", "./a", ""])
def test_paths_outside_the_data_directory_are_refused(path: str) -> None:
    with pytest.raises(ValueError, match="outside the data directory"):
        decode_ops(encode_ops([FileOp(WRITE, path, 0, b"x")]))
    with pytest.raises(ValueError):
        Manifest.from_json({"files": [[path, 1, 2]], "dirs": []})
    with pytest.raises(ValueError):
        decode_ops(encode_ops([FileOp(RENAME, "a", 0, path.encode())]))


def test_rename_target_outside_is_refused_by_the_applier(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    with pytest.raises(ValueError, match="outside the data directory"):
        Applier(tmp_path).apply([FileOp(RENAME, "a", 0, b"../escaped")])
    assert (tmp_path / "a").exists() and not (tmp_path.parent / "escaped").exists()


def test_short_batch_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        decode_batch(b"\x00" * 5)
