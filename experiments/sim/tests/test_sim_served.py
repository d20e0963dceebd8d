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


def synthetic_run(root, rate: str = "16", point: str = "baseline", n: int = 40, cpu: str = "Test CPU"):
    """A served bench with one run: steps costing exactly 5 ms + 10 us/prefill token + 1 ms/decode seq,
    requests that spend 3 ms inbound and 2 ms outbound."""
    bench = root / f"sim-served-rate{rate}-cpu-{point}-{cpu.replace(' ', '')}"
    run_dir = bench / "runs" / f"01-{point}-r1-serve"
    run_dir.mkdir(parents=True)
    events, t, client = [{"ev": "start", "pid": 1, "wall_minus_mono": 0.0}], 100.0, {
        "start_times": [], "ttfts": [], "input_lens": [], "latencies": []}
    for i in range(n):
        plen = 16 + (i * 7) % 50
        send = t - 0.003  # sent while the previous step ran: reaches the scheduler as it ends
        events.append({"ev": "add", "t": t, "rid": f"r{i}", "plen": plen, "arrival": 0.0})
        for k, (prefill, decode) in enumerate(((plen, 0), (0, 1 + i % 4))):
            s = 0.005 + 1e-5 * prefill + 1e-3 * decode
            events.append({"ev": "step", "t0": t, "s": s, "prefill_tokens": prefill, "decode_seqs": decode,
                           "context_tokens": 0, "first": [f"r{i}"] if k == 0 else [], "fin": [],
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
    (bench / "runs" / f"01-{point}-r1-serve.json").write_text(json.dumps({
        "variant": point, "machine": {"others_share": 0.1, "loadavg_1m_end": 1.0},
        "result": {"workloads": {"mixed_long_short": {}}}}))
    (bench / "manifest.json").write_text(json.dumps({
        "status": "complete", "config": {"request_rate": {"mixed_long_short": rate}},
        "provenance": {"machine": {"loadavg_1m": 1.0, "cpu_model": cpu, "cpu_count": 2}}, "busy_machine": False}))
    (bench / "summary.json").write_text("[]")
    return run_dir


def test_ttft_splits_exactly_and_the_fit_reproduces_its_points(tmp_path):
    synthetic_run(tmp_path)
    runs = served_fit.load_runs(tmp_path)
    reqs = runs[0]["workloads"]["mixed_long_short/pass1"]["requests"]
    assert len(reqs) == 40
    for q in reqs:
        assert q["inbound_s"] + q["engine_s"] + q["outbound_s"] == pytest.approx(q["ttft_s"], abs=1e-9)
        assert q["inbound_s"] == pytest.approx(0.003) and q["outbound_s"] == pytest.approx(0.002)
    model = served_fit.fit(runs, source="synthetic")
    assert model.overhead_s == pytest.approx(0.005, rel=1e-6)
    assert [model.coef[f] for f in FEATURES] == pytest.approx([1e-5, 1e-3, 0.0], abs=1e-9)
    assert model.fit["held_out"]["n"] > 0 and model.fit["held_out"]["median_abs_rel_error"] < 1e-6
    assert model.frontend["request_in_s"] == pytest.approx(0.003)
    assert model.frontend["token_out_s"] == pytest.approx(0.002)


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
    assert committed.fit["held_out"]["n"] > 20 and committed.fit["held_out_points"]["n"] > 20
    assert "calibrated" in committed.label and committed.fit["runs"]


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

        def schedule(self):
            return Out()

        def has_requests(self):
            return False

    class EngineCore:
        def __init__(self):
            self.scheduler = Sched()

        def step(self):
            self.scheduler.schedule()
            o = types.SimpleNamespace(request_id="a", new_token_ids=[5], finish_reason=None)
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
    assert events[2]["prefill_tokens"] == 8 and events[2]["first"] == ["a"] and events[2]["more"] is False
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
