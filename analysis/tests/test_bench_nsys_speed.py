"""The speed benchmark runs end to end on a tiny export and writes a self-describing result."""
from __future__ import annotations

from experiments.common.results import read_result

from analysis import bench_nsys_speed


def test_tiny_run_writes_result(tmp_path, capsys):
    out = tmp_path / "speed.json"
    assert bench_nsys_speed.main(["--size-mb", "3", "--repeats", "1", "--scratch", str(tmp_path),
                                  "--result", str(out)]) == 0
    doc = read_result(out)
    res = doc["results"]
    assert doc["benchmark_version"] == bench_nsys_speed.BENCHMARK_VERSION
    assert 2e6 < res["file_bytes"] < 6e6 and res["rows"]["CUPTI_ACTIVITY_KIND_KERNEL"] > 0
    assert set(res["summaries_s"]) == set(bench_nsys_speed.summaries(tmp_path / "x"))
    assert not list(tmp_path.glob("*.sqlite"))  # export removed unless --keep
    assert "all summaries" in capsys.readouterr().out
