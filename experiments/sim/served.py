"""The served-engine calibration and its validation runs, measured in the same window.

    python -m experiments.sim served [--repeats 2] [--rates 16,inf] [--points baseline,cap512,base-mbt1024]

One bench per rate in which every validation point runs twice per repeat: plain, and with
`served_hook/` first on PYTHONPATH and SIM_SERVED_STEPS=1 (`<point>-served`:
`experiments.sim.served_steps` writes `served-steps-<pid>.jsonl` into its run directory, per engine
step its start, seconds and what it computed, per request when it reached the scheduler and which
step gave its first token). One server at a time, as a user serves, the runs alternating A B B A
(the plain run next to its hooked twin, the order reversed every other repeat). The hooked runs
calibrate `cpu-served` (`served_fit`); the plain runs between them are what `validate` counts: this
VM's speed drifts between windows minutes apart by more than the tolerance (results/observations:
aa-paired-long), which no cost model fitted in one window can follow.
Not `interleave: passes`: with all six servers up at once the passes ran far slower than with one
(tried on 2 cores, run not kept; not a state anyone serves in).
Outputs under results/reference/sim/served/<bench id>/.
"""
from __future__ import annotations

import os
from pathlib import Path

from experiments.bench import machine, presets, processes, runner
from experiments.sim.points import VALIDATION_POINTS, VALIDATION_RATES, VALIDATION_WORKLOADS
from tools.pins import REPO_ROOT

SERVED_DIR = REPO_ROOT / "results" / "reference" / "sim" / "served"
HOOK_DIR = Path(__file__).resolve().parent / "served_hook"
HOOKED_SUFFIX = "-served"  # variant name of a point's server with the step hook armed
SERVE_PASSES = 2


def served_variant(vdef: dict) -> dict:
    """The variant def with the step hook armed in its server (and nowhere else: the client runs plain)."""
    path = processes.variant_env(vdef["engine"])["PYTHONPATH"]
    env = {**vdef["env"], "SIM_SERVED_STEPS": "1", "PYTHONPATH": os.pathsep.join([str(HOOK_DIR), path])}
    return {**vdef, "env": env}


def is_hooked(vdef: dict) -> bool:
    """Did this variant's server time its steps (a calibration run, not a validation run)?"""
    return vdef.get("env", {}).get("SIM_SERVED_STEPS") == "1"


def point_of(variant: str) -> str:
    """The validation point a (plain or hooked) variant of a served bench runs."""
    return variant.removesuffix(HOOKED_SUFFIX)


def bench_config(rate: str, repeats: int, points: list[str], passes: int = SERVE_PASSES) -> dict:
    """The served bench of one rate: per point a plain variant and its hooked twin, runs alternating."""
    cfg = presets.resolve("prefill-cap", repeats=repeats, backend="cpu")
    cfg["preset"] = f"sim-served-rate{rate}"
    cfg["description"] = (f"the simulator's validation points at {rate} req/s, each served twice per repeat: plain "
                          "(validation) and with every EngineCore step timed inside the engine process "
                          f"(`<point>{HOOKED_SUFFIX}`, calibration); one server at a time, runs alternating A B B A")
    cfg["modes"] = ["serve"]
    cfg["workloads"] = dict(VALIDATION_WORKLOADS)
    cfg["request_rate"] = {wl: rate for wl in VALIDATION_WORKLOADS}
    cfg["variants"] = [v for p in points for v in (p, p + HOOKED_SUFFIX)]
    cfg["variant_defs"] = {}
    for p in points:
        cfg["variant_defs"][p] = dict(VALIDATION_POINTS[p])
        cfg["variant_defs"][p + HOOKED_SUFFIX] = served_variant(VALIDATION_POINTS[p])
    cfg["serve_passes"] = passes
    cfg["machine_before"] = machine.sample_idle_machine()
    cfg["busy_machine"] = machine.check_quiet(cfg["machine_before"], allow_busy=True)
    return cfg


def record(rates=VALIDATION_RATES, repeats: int = 2, points=tuple(VALIDATION_POINTS), out: Path = SERVED_DIR,
           argv: list[str] | None = None) -> list[Path]:
    made = []
    for rate in rates:
        made.append(runner.run_bench(bench_config(str(rate), repeats, list(points)), out,
                                     argv=argv or ["python", "-m", "experiments.sim", "served"]))
        print(f"[sim served] rate {rate}: {made[-1]}", flush=True)
    return made
