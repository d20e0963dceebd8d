"""The served-engine calibration: real `vllm serve` runs whose EngineCore times every step.

    python -m experiments.sim served [--repeats 1] [--rates 16,inf] [--points baseline,cap512,base-mbt1024]

Runs the validation points through the ordinary bench (`experiments.bench.runner`, one bench per
rate, manifests with machine load), each server started with `served_hook/` first on PYTHONPATH
and SIM_SERVED_STEPS=1, so `experiments.sim.served_steps` writes `served-steps-<pid>.jsonl` into
every run's directory: per engine step its start, seconds and what it computed; per request when
it reached the scheduler and which step gave its first token. Outputs under
results/reference/sim/served/<bench id>/; `experiments.sim.served_fit` reads them.
"""
from __future__ import annotations

import os
from pathlib import Path

from experiments.bench import machine, processes, runner
from experiments.sim import real_runs
from experiments.sim.points import VALIDATION_POINTS, VALIDATION_RATES
from tools.pins import REPO_ROOT

SERVED_DIR = REPO_ROOT / "results" / "reference" / "sim" / "served"
HOOK_DIR = Path(__file__).resolve().parent / "served_hook"


def served_variant(vdef: dict) -> dict:
    """The variant def with the step hook armed in its server (and nowhere else: the client runs plain)."""
    path = processes.variant_env(vdef["engine"])["PYTHONPATH"]
    env = {**vdef["env"], "SIM_SERVED_STEPS": "1", "PYTHONPATH": os.pathsep.join([str(HOOK_DIR), path])}
    return {**vdef, "env": env}


def bench_config(rate: str, repeats: int, points: list[str]) -> dict:
    cfg = real_runs.bench_config(rate, repeats)
    cfg["preset"] = f"sim-served-rate{rate}"
    cfg["description"] = (f"real `vllm serve` runs of the simulator's validation points at {rate} req/s, "
                          "every EngineCore step timed from inside the engine process (served_steps)")
    cfg["variants"] = list(points)
    cfg["variant_defs"] = {p: served_variant(VALIDATION_POINTS[p]) for p in points}
    cfg["machine_before"] = machine.sample_idle_machine()
    cfg["busy_machine"] = machine.check_quiet(cfg["machine_before"], allow_busy=True)
    return cfg


def record(rates=VALIDATION_RATES, repeats: int = 1, points=tuple(VALIDATION_POINTS), out: Path = SERVED_DIR,
           argv: list[str] | None = None) -> list[Path]:
    made = []
    for rate in rates:
        made.append(runner.run_bench(bench_config(str(rate), repeats, list(points)), out,
                                     argv=argv or ["python", "-m", "experiments.sim", "served"]))
        print(f"[sim served] rate {rate}: {made[-1]}", flush=True)
    return made
