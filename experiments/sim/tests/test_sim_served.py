"""The served calibration: EngineCore step hook, the TTFT split, the cpu-served fit and its frontend.

No engine start: the hook is exercised on a stand-in module, the split and the fit on a synthetic
run written in the bench's layout, and the committed served runs are refitted to the committed model.
"""
from __future__ import annotations

import json
import sys
import types

import pytest

from experiments.sim import cost_models, driver, served_fit, served_steps
from experiments.sim.cost_models import FEATURES, LinearStepCost
from experiments.sim.errors import SimInputError


HOOKED = {"engine": "baseline", "env": {"SIM_SERVED_STEPS": "1"}, "engine_args": {}}


def synthetic_run(root, rate: str = "16", point: str = "baseline", n: int = 40, cpu: str = "Test CPU"):
    """A served bench with one hooked run (`<point>-served`): steps costing exactly 5 ms + 10 us/prefill
    token + 1 ms/decode seq, requests that spend 3 ms inbound and 2 ms outbound; and its plain twin
    `<point>` (a validation run: no step log, never read by the fit)."""
    bench = root / f"sim-served-rate{rate}-cpu-{point}-{cpu.replace(' ', '')}"
    run_dir = bench / "runs" / f"02-{point}-served-r1-serve"
    run_dir.mkdir(parents=True)
    (bench / "runs" / f"01-{point}-r1-serve").mkdir()
    (bench / "runs" / f"01-{point}-r1-serve.json").write_text(json.dumps({"variant": point}))
    events, t, client = [{"ev": "start", "pid": 1, "wall_minus_mono": 0.0}], 100.0, {
        "start_times": [], "ttfts": [], "input_lens": [], "latencies": []}
    for i in range(n):
        plen = 16 + (i * 7) % 50
        send = t - 0.003  # sent while the previous step ran: reaches the scheduler as it ends
        events.append({"ev": "add", "t": t, "rid": f"r{i}", "plen": plen, "arrival": 0.0})
        for k, (prefill, decode) in enumerate(((plen, 0), (0, 1 + i % 4))):
            s = 0.005 + 1e-5 * prefill + 1e-3 * decode
            events.append({"ev": "step", "t0": t, "s": s, "prefill_tokens": prefill, "decode_seqs": decode,
                           "context_tokens": 0, "unique_context_tokens": 0, "num_reqs": 1,
                           "attention_pairs": prefill * (prefill + 1) // 2 + decode,
                           "first": [f"r{i}"] if k == 0 else [], "fin": [],
                           "more": k == 0 or i < n - 1})
            if k == 0:
                first_end = t + s
            t += s
        client["start_times"].append(send)
        client["ttfts"].append(first_end + 0.002 - send)
        client["input_lens"].append(plen)
        client["latencies"].append(t + 0.002 - send)
    (run_dir / "served-steps-1.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events) + '{"ev": "st')
    (run_dir / "bench-serve-mixed_long_short.json").write_text(json.dumps(client))
    (bench / "runs" / f"02-{point}-served-r1-serve.json").write_text(json.dumps({
        "variant": f"{point}-served", "machine": {"others_share": 0.1, "loadavg_1m_end": 1.0},
        "result": {"workloads": {"mixed_long_short": {}}}}))
    (bench / "manifest.json").write_text(json.dumps({
        "status": "complete", "config": {"request_rate": {"mixed_long_short": rate},
                                         "workloads": {"mixed_long_short": {"num_requests": n}}, "variant_defs": {
            point: {**HOOKED, "env": {}}, f"{point}-served": HOOKED}},
        "provenance": {"machine": {"loadavg_1m": 1.0, "cpu_model": cpu, "cpu_count": 2}}, "busy_machine": False}))
    (bench / "summary.json").write_text("[]")
    return run_dir


def test_ttft_splits_exactly_and_the_fit_reproduces_its_points(tmp_path):
    synthetic_run(tmp_path)
    runs = served_fit.load_runs(tmp_path)
    assert [(r["run"], r["point"]) for r in runs] == [("02-baseline-served-r1-serve", "baseline")]  # not the plain twin
    reqs = runs[0]["workloads"]["mixed_long_short/pass1"]["requests"]
    assert len(reqs) == 40
    for q in reqs:
        assert q["inbound_s"] + q["engine_s"] + q["outbound_s"] == pytest.approx(q["ttft_s"], abs=1e-9)
        assert q["inbound_s"] == pytest.approx(0.003) and q["outbound_s"] == pytest.approx(0.002)
    model = served_fit.fit(runs, source="synthetic")
    assert model.overhead_s == pytest.approx(0.005, rel=1e-6)
    assert model.coef == pytest.approx({"prefill_tokens": 1e-5, "decode_seqs": 1e-3, "unique_context_tokens": 0.0,
                                        "attention_pairs": 0.0, "arrivals": 0.0}, abs=1e-9)
    assert model.fit["held_out"]["n"] > 0 and model.fit["held_out"]["median_abs_rel_error"] < 1e-6
    assert model.frontend["request_in_s"] == pytest.approx(0.003)
    assert model.frontend["token_out_s"] == pytest.approx(0.002)


def test_the_idle_wait_after_the_last_request_finishes_is_not_a_step_period(tmp_path):
    """A step that finishes the last unfinished request is followed by idle time until the next arrival:
    not step cost, even when the log says `more` (engines hooked before the fix wrote has_requests())."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    events = [{"ev": "add", "t": 0.0, "rid": "a", "plen": 4}, {"ev": "add", "t": 0.0, "rid": "b", "plen": 4},
              {"ev": "add", "t": 2.0, "rid": "c", "plen": 4}]
    for t0, fin in ((0.001, []), (0.011, ["a"]), (0.021, ["b"]), (2.001, []), (2.011, ["c"])):
        events.append({"ev": "step", "t0": t0, "s": 0.009, "prefill_tokens": 0, "decode_seqs": 1,
                       "context_tokens": 0, "first": [], "fin": fin, "more": True})
    (run_dir / "served-steps-1.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    steps, _ = served_fit.read_events(run_dir)
    periods = [s["period"] for s in steps]
    assert periods[:2] == pytest.approx([0.010, 0.010])  # b still running after a finished
    assert periods[2:] == [None, pytest.approx(0.010), None]  # idle until c arrives; nothing after c


def test_the_log_gives_each_step_its_arrivals(tmp_path):
    """arrivals: adds after a step's start up to the next step's start (the last step: up to its end)."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    events = [{"ev": "add", "t": t, "rid": rid, "plen": 4}
              for t, rid in ((0.0, "a"), (0.004, "b"), (0.009, "c"), (0.010, "d"), (0.025, "e"), (0.05, "f"))]
    for t0, dec in ((0.001, 0), (0.010, 1), (0.020, 4)):
        events.append({"ev": "step", "t0": t0, "s": 0.008, "prefill_tokens": 4, "decode_seqs": dec,
                       "context_tokens": 0, "first": [], "fin": [], "more": True})
    (run_dir / "served-steps-1.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    steps, _ = served_fit.read_events(run_dir)
    assert [s["arrivals"] for s in steps] == [3, 0, 1]  # b, c, d (d at the next start); none; e by 0.028


def test_a_fit_on_logs_without_a_served_feature_asks_for_a_re_measure(tmp_path):
    run_dir = synthetic_run(tmp_path)
    log = run_dir / "served-steps-1.jsonl"
    log.write_text(log.read_text().replace('"unique_context_tokens": 0, ', ""))
    with pytest.raises(SimInputError, match=r"without step feature\(s\) \['unique_context_tokens'\].*re-measure"):
        served_fit.fit(served_fit.load_runs(tmp_path), source="synthetic")


def test_the_served_model_records_its_machine_and_refuses_two(tmp_path):
    """One calibration is one machine: validate counts only real sets from the CPU the fit names."""
    from experiments.sim import validate

    synthetic_run(tmp_path)
    model = served_fit.fit(served_fit.load_runs(tmp_path), source="synthetic")
    assert model.fit["machine"] == {"cpu_model": "Test CPU", "cpu_count": 2}
    synthetic_run(tmp_path, point="cap512", cpu="Other CPU")
    with pytest.raises(SimInputError, match="different CPUs"):
        served_fit.fit(served_fit.load_runs(tmp_path), source="synthetic")
    assert validate.calibration_cpu("cpu") == cost_models.load("cpu").fit["machine"]["cpu_model"]
    assert validate.calibration_cpu("roofline-h100:x") is None


def test_a_run_without_engine_steps_fails_clearly(tmp_path):
    run_dir = synthetic_run(tmp_path)
    (run_dir / "served-steps-1.jsonl").unlink()
    with pytest.raises(SimInputError, match="SIM_SERVED_STEPS=1"):
        served_fit.load_runs(tmp_path)
    with pytest.raises(SimInputError, match="no complete served runs"):
        served_fit.load_runs(tmp_path / "nothing")


def test_a_window_whose_repeats_ran_at_different_speeds_is_flagged_drifted():
    """The same point's two repeats doing the same work at 1.5x apart: the VM's speed moved within the
    window by more than the tolerance; 1.05x apart is a steady window. Steal is carried through."""
    model = LinearStepCost("m", 0.005, {"prefill_tokens": 1e-5, "decode_seqs": 1e-3, "context_tokens": 0.0})

    def run(name, slow, steal):
        steps = [{"prefill_tokens": p, "decode_seqs": d, "context_tokens": 0,
                  "period": slow * (0.005 + 1e-5 * p + 1e-3 * d)} for p, d in ((64, 0), (0, 4), (128, 2))]
        return {"bench": "w", "run": name, "point": "baseline", "rates": {"mixed_long_short": "16"}, "machine": {"steal_share": steal},
                "workloads": {"mixed_long_short/pass1": {"steps": steps}}}

    steady = served_fit.windows([run("02-baseline-served-r1", 1.0, 0.0), run("11-baseline-served-r2", 1.05, 0.01)],
                                model)[0]
    assert steady["repeats_apart"] == {"baseline": pytest.approx(1.05)} and not steady["drifted"]
    assert steady["speed_vs_fit"]["02-baseline-served-r1"] == pytest.approx(1.0)
    drifted = served_fit.windows([run("02-baseline-served-r1", 1.5, 0.08), run("11-baseline-served-r2", 1.0, 0.0)],
                                 model)[0]
    assert drifted["drifted"] and drifted["steal_share_max"] == pytest.approx(0.08)
    from experiments.sim import validate
    assert "window drifted" in validate.window_note(drifted) and "8.0%" in validate.window_note(drifted)
    assert "drifted" not in validate.window_note(steady)


def test_committed_served_model_reproduces_its_fitted_points():
    """Refitting the committed served runs gives the committed coefficients, frontend and errors."""
    committed = cost_models.load("cpu-served")
    runs = served_fit.load_runs(cost_models.REPO_ROOT / committed.source)
    refit = served_fit.fit(runs, source=committed.source)
    assert refit.overhead_s == pytest.approx(committed.overhead_s, rel=1e-9)
    assert refit.coef == pytest.approx(committed.coef, rel=1e-9)
    assert refit.frontend == pytest.approx(committed.frontend, rel=1e-9)
    assert refit.fit["held_out_points"].pop("points") == committed.fit["held_out_points"].pop("points")
    for part in ("train", "held_out", "held_out_points"):
        assert refit.fit[part] == pytest.approx(committed.fit[part], rel=1e-9)
    assert [r.pop("period_over_model") for r in refit.fit["residuals"]] == \
        pytest.approx([r.pop("period_over_model") for r in committed.fit["residuals"]], rel=1e-9)
    assert refit.fit["residuals"] == committed.fit["residuals"]
    for new, old in zip(refit.fit["alternatives"], committed.fit["alternatives"], strict=True):
        assert new["features"] == old["features"]
        for key in ("held_out_median_abs_rel_error", "held_out_points_median_abs_rel_error"):
            assert new[key] == pytest.approx(old[key], rel=1e-9)
    # every served feature earns its place: dropping it, or the summed context instead of the unique one,
    # raises both held-out errors (the README's claim, checked on the committed runs)
    for alt in committed.fit["alternatives"]:
        if alt["features"].startswith(("without ", "summed context")):
            assert alt["held_out_median_abs_rel_error"] > committed.fit["held_out"]["median_abs_rel_error"]
            assert alt["held_out_points_median_abs_rel_error"] > committed.fit["held_out_points"]["median_abs_rel_error"]
    assert committed.fit["held_out"]["n"] > 20 and committed.fit["held_out_points"]["n"] > 20
    assert "calibrated" in committed.label and committed.fit["runs"]
    for new, old in zip(refit.fit["windows"], committed.fit["windows"], strict=True):
        assert (new["bench"], new["drifted"]) == (old["bench"], old["drifted"])
        assert new["repeats_apart"] == pytest.approx(old["repeats_apart"], rel=1e-9)


def test_missing_or_unfitted_served_model_fails_clearly(tmp_path, monkeypatch):
    monkeypatch.setattr(cost_models, "CPU_SERVED_MODEL_PATH", tmp_path / "cost_model_served.json")
    with pytest.raises(SimInputError, match="not calibrated.*served-fit"):
        cost_models.load("cpu-served")
    (tmp_path / "cost_model_served.json").write_text(json.dumps({"name": "cpu-served", "overhead_s": 0.01}))
    with pytest.raises(SimInputError, match="not a fitted model.*coef"):
        cost_models.load("cpu-served")


def test_frontend_delays_and_paces_arrivals():
    rows = [{"request_id": f"r{i}", "arrival_s": 0.0 if i < 3 else 1.0} for i in range(4)]
    reach = {r["request_id"]: r["reach_s"] for r in
             driver.reach_times(rows, {"request_in_s": 0.01, "request_in_serial_s": 0.002})}
    assert reach == pytest.approx({"r0": 0.01, "r1": 0.012, "r2": 0.014, "r3": 1.01})
    assert [r["reach_s"] for r in driver.reach_times(rows, {})] == [0.0, 0.0, 0.0, 1.0]
    plain = LinearStepCost("t", 0.001, dict.fromkeys(FEATURES, 0.0))
    assert plain.frontend is None  # in-process models: no frontend, the driver adds nothing


def test_step_hook_times_steps_and_arrivals(tmp_path, monkeypatch):
    """The hook wraps a stand-in EngineCore when its module is imported and logs steps and adds."""
    name = "sim_fake_engine_core"
    mod = types.ModuleType(name)

    class Req:
        def __init__(self, n):
            self.num_computed_tokens, self.num_prompt_tokens = n, n

    class Out:
        total_num_scheduled_tokens = 8
        num_scheduled_tokens = {"a": 8}

    class Sched:
        requests = {"a": Req(8)}
        block_size = 4
        kv_cache_manager = types.SimpleNamespace(get_block_ids=lambda rid: ([0, 1],))

        def schedule(self):
            return Out()

        def has_requests(self):  # as vLLM's: true until the next schedule() hands over the finished ids
            return True

        def has_unfinished_requests(self):
            return False

    class EngineCore:
        def __init__(self):
            self.scheduler = Sched()

        def step(self):
            self.scheduler.schedule()
            o = types.SimpleNamespace(request_id="a", new_token_ids=[5], finish_reason="length")
            return {0: types.SimpleNamespace(outputs=[o])}, True

        def add_request(self, request, request_wave=0):
            return None

    mod.EngineCore = EngineCore
    monkeypatch.setattr(served_steps, "_OUT", {})
    monkeypatch.setattr(served_steps, "_out_path", lambda: str(tmp_path / "served-steps-1.jsonl"))
    served_steps.install(mod)
    core = EngineCore()
    core.add_request(types.SimpleNamespace(request_id="a", num_prompt_tokens=8, arrival_time=1.0))
    core.step()
    served_steps._OUT["fh"].close()
    events = [json.loads(x) for x in (tmp_path / "served-steps-1.jsonl").read_text().splitlines()]
    assert [e["ev"] for e in events] == ["start", "add", "step"]
    assert events[2]["prefill_tokens"] == 8 and events[2]["first"] == ["a"] and events[2]["fin"] == ["a"]
    assert events[2]["unique_context_tokens"] == events[2]["context_tokens"] == 0
    assert events[2]["more"] is False  # the step finished the only request: no work left
    assert name not in sys.modules


def test_after_import_hook_runs_once_when_the_module_executes(tmp_path, monkeypatch):
    (tmp_path / "sim_after_import_probe.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    seen = []
    served_steps.AfterImport.arm("sim_after_import_probe", lambda m: seen.append(m.VALUE))
    import sim_after_import_probe  # noqa: F401

    assert seen == [1]
    assert not any(isinstance(f, served_steps.AfterImport) for f in sys.meta_path)
    served_steps.AfterImport.arm("sim_after_import_probe", lambda m: seen.append(2))  # already imported: at once
    assert seen == [1, 2]
    sys.modules.pop("sim_after_import_probe")


def test_hook_cost_bench_is_paired_with_an_aa_floor_and_the_hook_on_one_variant_only(monkeypatch):
    from experiments.bench import machine
    from experiments.sim import hook_cost

    monkeypatch.setattr(machine, "sample_idle_machine", lambda: {"busy_share": 0.0})
    cfg = hook_cost.bench_config()
    assert cfg["interleave"] == "passes" and cfg["variants"] == ["baseline", "baseline-aa", "baseline-hook"]
    armed = {v for v, d in cfg["variant_defs"].items() if d["env"].get("SIM_SERVED_STEPS") == "1"}
    assert armed == {"baseline-hook"}
    assert "served_hook" in cfg["variant_defs"]["baseline-hook"]["env"]["PYTHONPATH"]


def test_served_bench_runs_each_point_plain_and_hooked_in_one_window(monkeypatch):
    """Calibration and validation in one window: per point a plain run (validation) next to its hooked twin
    (calibration), one server at a time, A B B A; the plain def is the validation point itself."""
    from experiments.bench import machine, runner
    from experiments.sim import served
    from experiments.sim.points import VALIDATION_POINTS

    monkeypatch.setattr(machine, "sample_idle_machine", lambda: {
        "busy_share": 0.0, "steal_share": 0.0, "loadavg_1m": 0.1, "cpu_count": 2, "sample_s": 3.0})
    cfg = served.bench_config("rateinf", 2, ["baseline", "cap512"])
    assert cfg["variants"] == ["baseline", "baseline-served", "cap512", "cap512-served"]
    assert [served.is_hooked(cfg["variant_defs"][v]) for v in cfg["variants"]] == [False, True, False, True]
    assert cfg["variant_defs"]["cap512"] == VALIDATION_POINTS["cap512"]
    assert cfg["variant_defs"]["cap512-served"]["engine_args"] == VALIDATION_POINTS["cap512"]["engine_args"]
    assert {served.point_of(v) for v in cfg["variants"]} == {"baseline", "cap512"}
    assert runner.run_order(cfg) == [(1, v, "serve") for v in cfg["variants"]] + \
        [(2, v, "serve") for v in cfg["variants"][::-1]]
    assert cfg["serve_passes"] >= 2 and set(cfg["request_rate"].values()) == {"inf"}


def test_long_docs_served_bench_carries_the_long_docs_budget_in_every_point(monkeypatch):
    """The long-document bench (patches 0002/0003's case): both arrival patterns in one server start, and the
    long-docs engine args inside each point's def, so the simulator (which reads only the point's def) runs
    the same budget and context length as the real server. Unknown benches and points fail before any run."""
    from experiments.bench import machine
    from experiments.bench.presets import LONG_DOCS_ENGINE_ARGS
    from experiments.sim import served

    monkeypatch.setattr(machine, "sample_idle_machine", lambda: {
        "busy_share": 0.0, "steal_share": 0.0, "loadavg_1m": 0.1, "cpu_count": 2, "sample_s": 3.0})
    cfg = served.bench_config("long-docs", 2)
    assert cfg["variants"] == ["ld-baseline", "ld-baseline-served", "ld-cap256", "ld-cap256-served"]
    assert cfg["request_rate"] == {"long_docs": "4", "long_docs_burst": "inf"}
    for v in cfg["variants"]:
        assert LONG_DOCS_ENGINE_ARGS.items() <= cfg["variant_defs"][v]["engine_args"].items()
    assert cfg["variant_defs"]["ld-cap256"]["engine"] == "patched"
    assert served_fit.FIT_POINTS == ("baseline", "ld-baseline")
    with pytest.raises(SystemExit, match="unknown served bench"):
        served.record(benches=["rate16", "long-doc"])
    with pytest.raises(SystemExit, match="no served bench"):
        served.record(benches=["rate16"], points=["ld-cap256"])


def _bench(root, name, variant_defs, passes=None):
    bench = root / name
    (bench / "runs").mkdir(parents=True)
    for i, v in enumerate(variant_defs, 1):
        res = {"output_throughput": 100.0 * i, "passes": passes} if passes else {"output_throughput": 100.0 * i}
        (bench / "runs" / f"0{i}-{v}-r1-serve.json").write_text(json.dumps(
            {"variant": v, "result": {"workloads": {"mixed_long_short": res}}}))
    (bench / "manifest.json").write_text(json.dumps({
        "status": "complete", "series_hash": "s", "provenance": {"machine": {"cpu_model": "Test CPU", "loadavg_1m": 1.0}},
        "config": {"variant_defs": variant_defs, "workloads": {"mixed_long_short": {}}, "seed": 0,
                   "request_rate": {"mixed_long_short": "16"}}}))
    return bench


def test_validation_compares_the_plain_servers_only_and_counts_one_value_per_pass(tmp_path, monkeypatch):
    """A hooked server is the calibration: never compared with what was fitted on it. Every timed client
    pass is one real value (the spread is the passes' own), and only the calibration's window counts."""
    from experiments.sim import api, validate

    plain = {"engine": "baseline", "env": {}, "engine_args": {}}
    bench = _bench(tmp_path, "b", {"baseline": plain, "baseline-served": HOOKED},
                   passes=[{"output_throughput": 90.0}, {"output_throughput": 110.0}, {"output_throughput": 100.0}])
    assert validate.run_values(bench)[("baseline", "mixed_long_short", "output_throughput")] == [90.0, 110.0, 100.0]
    older = _bench(tmp_path, "older", {"baseline": plain})
    assert validate.run_values(older)[("baseline", "mixed_long_short", "output_throughput")] == [100.0]

    simulated = []
    monkeypatch.setattr(api, "run_jobs", lambda jobs: [simulated.append(j) or {
        "summary": {"output_throughput": 105.0}, "series": None, "label": "simulated (cost model x)"} for j in jobs])
    monkeypatch.setattr(validate, "calibration_cpu", lambda cm: "Test CPU")
    same = validate.compare_bench(bench, "cpu-served", same_window=True)
    assert len(simulated) == 1 and [r["point"] for r in same["rows"]] == ["baseline"]
    row = same["rows"][0]
    assert (row["real_passes"], row["real_median"], row["real_spread"]) == (3, 100.0, pytest.approx(0.2))
    assert row["within"] and same["not_counted"] is None
    assert row["plain_over_hooked_twin"] == pytest.approx(1.0)  # the twin's passes are the same here
    apart = validate.compare_bench(_bench(tmp_path, "c", {"baseline": plain, "baseline-served": HOOKED}), "cpu-served",
                                   same_window=True)
    assert apart["rows"][0]["plain_over_hooked_twin"] == pytest.approx(100.0 / 200.0)
    assert validate.compare_bench(older, "cpu-served")["rows"][0]["plain_over_hooked_twin"] is None
    assert validate.compare_bench(older, "cpu-served")["not_counted"] == "measured in another window than the served calibration"
    assert "another CPU" in validate.not_counted_reason("Test CPU", "Other CPU", same_window=True)
