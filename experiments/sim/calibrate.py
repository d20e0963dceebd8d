"""Record real engine steps and fit the CPU cost model: `python -m experiments.sim calibrate`.

One real engine start per recorded variant (`experiments.sim.recorder`, the
bench's variant environment): a small workload drawn from the bench workloads
(short chat turns, long documents, shared-prefix requests), arriving at fixed
engine steps. The baseline workload runs 7 times (same decisions each time) and
a step's time is its fastest pass (shared cores only ever stretch a step); those
timings fit `LinearStepCost` (every 5th step held out, its error recorded). Each
run's per-step scheduling decisions are kept so the simulator can be checked
step by step against them (`experiments.sim.decisions`). Outputs in results/reference/sim/calibration/:
    recorded-<point>.json   steps (decisions, features, wall time), scheduler config, machine, load
    cost_model.json         the fitted model with its train and held-out error
    cost_model.png          predicted vs measured step time
"""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

from experiments.bench import presets, processes
from experiments.common.provenance import provenance
from experiments.common.results import write_json_atomic
from experiments.sim import api
from experiments.sim.cost_models import CALIBRATION_DIR, CPU_MODEL_PATH, LinearStepCost
from experiments.sim.points import VALIDATION_POINTS
from experiments.sim.prompts import Tokenizer
from tools import pins

# The server's scheduler defaults, set explicitly: LLM(...) (the recorder) and `vllm serve`
# (the simulator's config) would otherwise resolve different defaults.
RECORD_ENGINE_ARGS = {**api.BASE_ENGINE_ARGS, "max_num_batched_tokens": 2048, "max_num_seqs": 128,
                      "enable_prefix_caching": True}
RECORDED_POINTS = ("baseline", "cap512")
TIMED_PASSES = 7  # the baseline recording is timed: 7 passes, the fastest per step


def recorded_rows(model: str, seed: int = 0) -> list[dict]:
    """48 mixed_long_short + 48 shared_prefix_chat requests, interleaved, arriving 0-4 steps apart."""
    tok = Tokenizer(model)
    mixed, _ = api.workload_rows("mixed_long_short", {"num_requests": 48})
    shared, _ = api.workload_rows("shared_prefix_chat", {"num_requests": 48})
    rng = random.Random(f"sim-recorded:{seed}")
    rows, step = [], 0
    for a, b in zip(mixed, shared):
        for r in (a, b):
            rows.append({"request_id": r["request_id"], "prompt_token_ids": tok.ids(r["prompt"]),
                         "output_tokens": r["output_tokens"], "arrival_step": step})
            step += rng.randint(0, 4)
    return rows


def record(point: str, rows: list[dict], model: str, out: Path, passes: int = 1) -> dict:
    vdef = VALIDATION_POINTS[point]
    job = {"model": model, "engine_args": {**RECORD_ENGINE_ARGS, **vdef["engine_args"]}, "rows": rows,
           "passes": passes,
           "warmup_prompts": [rows[0]["prompt_token_ids"][:64], [1] + [500] * 1500]}
    with tempfile.TemporaryDirectory(prefix="sim-rec-") as tmp:
        job_path, out_path = Path(tmp) / "job.json", Path(tmp) / "out.json"
        job_path.write_text(json.dumps(job))
        env = processes.variant_env(vdef["engine"], vdef["env"])
        log = Path(tmp) / "recorder.log"
        with open(log, "wb") as fh:
            load_before = os.getloadavg()[0]
            rc = subprocess.run([sys.executable, "-m", "experiments.sim.recorder", str(job_path), str(out_path)],
                                env=env, cwd=pins.REPO_ROOT, stdout=fh, stderr=subprocess.STDOUT,
                                timeout=1200).returncode
            load_after = os.getloadavg()[0]
        if rc != 0 or not out_path.exists():
            raise RuntimeError(f"recorder for {point} failed (rc={rc}):\n{log.read_text(errors='replace')[-3000:]}")
        result = json.loads(out_path.read_text())
    record_ = {"point": point, "variant": vdef, "series": api.engine_series(vdef["engine"]),
               "model": Path(model).name, "engine_args": job["engine_args"],
               "rows": rows, "loadavg_1m_before": load_before, "loadavg_1m_after": load_after,
               "provenance": provenance(argv=["python", "-m", "experiments.sim", "calibrate"]), **result}
    write_json_atomic(out, record_, compact=True)
    return record_


def fit(recorded: dict) -> LinearStepCost:
    steps = recorded["steps"]
    model = LinearStepCost.fit_steps("cpu", steps, [s["step_s"] for s in steps],
                                     source=f"results/reference/sim/calibration/recorded-{recorded['point']}.json")
    model.fit["target"] = ("step_s: wall time of EngineCore.step (schedule + forward + sample + update), "
                           f"fastest of {len(recorded['passes'])} passes of the same workload")
    model.fit["machine"] = recorded["provenance"]["machine"]
    model.fit["loadavg_1m_before_after"] = [recorded["loadavg_1m_before"], recorded["loadavg_1m_after"]]
    model.fit["torch_threads"] = recorded["torch_threads"]
    return model


def plot_fit(model: LinearStepCost, steps: list[dict], path: Path) -> None:
    from experiments.common.plots import plt, save_figure

    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    meas = [s["step_s"] * 1e3 for s in steps]
    pred = [model.step_seconds(s) * 1e3 for s in steps]
    held = [i % 5 == 0 for i in range(len(steps))]
    ax.scatter([m for m, h in zip(meas, held) if not h], [p for p, h in zip(pred, held) if not h], s=8,
               alpha=0.4, label="fitted steps")
    ax.scatter([m for m, h in zip(meas, held) if h], [p for p, h in zip(pred, held) if h], s=10,
               color="tab:red", alpha=0.7, label="held-out steps")
    top = max(meas + pred)
    ax.plot([0, top], [0, top], color="grey", lw=0.8)
    ho = model.fit["held_out"]
    ax.set_title(f"CPU step cost model: held-out median |error| {ho['median_abs_rel_error']:.1%}", fontsize=9)
    ax.set_xlabel("measured step time (ms)")
    ax.set_ylabel("predicted step time (ms)")
    ax.legend(fontsize=8)
    save_figure(fig, path, source="results/reference/sim/calibration/cost_model.json")


def calibrate(points=RECORDED_POINTS, model: str = presets.EMBEDDED_MODEL) -> LinearStepCost | None:
    """Record `points`; refit the cost model when the baseline is among them (re-recording only a
    patched point, after the series changed, leaves the fit alone)."""
    unknown = [p for p in points if p not in VALIDATION_POINTS]
    if unknown:
        raise SystemExit(f"unknown point(s) {unknown}; known: {', '.join(VALIDATION_POINTS)}")
    rows = recorded_rows(model)
    recorded = {p: record(p, rows, model, CALIBRATION_DIR / f"recorded-{p}.json",
                          passes=TIMED_PASSES if p == "baseline" else 1) for p in points}
    if "baseline" not in recorded:
        return None
    cm = fit(recorded["baseline"])
    write_json_atomic(CPU_MODEL_PATH, cm.to_json())
    plot_fit(cm, recorded["baseline"]["steps"], CALIBRATION_DIR / "cost_model.png")
    return cm
