"""The speed benchmark runs end to end on a tiny export and writes a self-describing result."""
from __future__ import annotations

from experiments.common.results import read_result

from analysis import bench_nsys_speed


def test_tiny_run_writes_result(tmp_path, capsys):
    out = tmp_path / "speed.json"
    readme = bench_nsys_speed.README.read_text()
    assert bench_nsys_speed.main(["--size-mb", "3", "--repeats", "1", "--scratch", str(tmp_path),
                                  "--result", str(out)]) == 0
    doc = read_result(out)
    res = doc["results"]
    assert doc["benchmark_version"] == bench_nsys_speed.BENCHMARK_VERSION
    assert 2e6 < res["file_bytes"] < 6e6 and res["rows"]["CUPTI_ACTIVITY_KIND_KERNEL"] > 0
    assert set(res["summaries_s"]) == set(bench_nsys_speed.summaries(tmp_path / "x"))
    assert not list(tmp_path.glob("*.sqlite"))  # export removed unless --keep
    assert "all summaries" in capsys.readouterr().out
    fetch = res["kernel_columns_fetch_s"]
    assert fetch["group_concat"]["n"] == fetch["fetch_rows"]["n"] == 1 and fetch["speedup_median"] > 0
    assert "faster than\nfetching the same 4 columns row by row" in bench_nsys_speed.render(doc, out)
    assert bench_nsys_speed.README.read_text() == readme  # only the default 1000 MB result re-renders it


def _block(text: str) -> str:
    from experiments.common.docs import find_blocks

    blocks = find_blocks(text)
    assert bench_nsys_speed.BLOCK in blocks, "analysis/README.md lost its nsys-speed markers"
    return blocks[bench_nsys_speed.BLOCK]


def test_readme_section_matches_committed_result():
    doc = read_result(bench_nsys_speed.DEFAULT_RESULT)
    assert _block(bench_nsys_speed.README.read_text()) == bench_nsys_speed.render(doc).strip("\n"), (
        "analysis/README.md's speed section differs from results/reference/nsys_speed/nsys_speed_1000mb.json: "
        "run `python -m analysis.bench_nsys_speed --render-only`")
