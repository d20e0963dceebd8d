"""Every plot writes a non-empty PNG from the frames it documents."""
from __future__ import annotations

from analysis import chrome_trace, examples, phases, plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path) -> bool:
    data = path.read_bytes()
    return data[:8] == PNG_MAGIC and len(data) > 5_000


def test_bench_plots(tmp_path):
    summary, latencies = examples.example_bench_frames()
    assert set(summary.columns) == {"variant", "workload", "metric", "median", "min", "max"}
    assert _is_png(plots.metric_bars(summary, tmp_path / "bars.png", source="example"))
    assert _is_png(plots.latency_cdfs(latencies, tmp_path / "cdf.png", title="example"))
    only_ttft = latencies[latencies["kind"] == "ttft_ms"]
    assert _is_png(plots.latency_cdfs(only_ttft, tmp_path / "ttft.png"))


def test_trace_plots(tmp_path, torch_traces):
    ranges = chrome_trace.load_profiler_dir(torch_traces["dir"], categories=(chrome_trace.USER_ANNOTATION,))
    assert _is_png(plots.step_timeline(ranges, tmp_path / "timeline.png", max_steps=2))
    shares = phases.phase_shares(ranges)
    out = plots.phase_share_bars({"baseline": shares, "patched": shares}, tmp_path / "shares.png", source="x")
    assert _is_png(out)
    assert _is_png(plots.phase_share_bars(shares.assign(variant="one"), tmp_path / "one.png"))
