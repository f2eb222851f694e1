"""The benchmark script keeps working (it is run by hand; no timing is asserted)."""

from protocol import bench


def test_bench_runs_every_path_against_pamqp(capsys):
    bench.main(["-n", "30", "--rounds", "1"])
    out = capsys.readouterr().out
    for path in ("decode publish set", "encode deliver set", "decode ack"):
        assert out.count(path) >= 2
    rows = bench.run(30, 1)
    assert {label for _, label, _, _ in rows} == {"16 B", "4 KiB"}
    assert all(ours > 0 for _, _, ours, _ in rows)
    assert all(theirs for name, _, _, theirs in rows if name.endswith(": codec"))
