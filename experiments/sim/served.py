"""The served-engine calibration and its validation runs, measured in the same window.

    python -m experiments.sim served [--repeats 2] [--rates 16,inf] [--points baseline,cap512,base-mbt1024]

One paired bench per rate (`interleave: passes`, as `PRESET=aa-paired`): per repeat, every validation
point's server up twice at once, once plain and once with `served_hook/` first on PYTHONPATH and
SIM_SERVED_STEPS=1 (`<point>-served`: `experiments.sim.served_steps` writes `served-steps-<pid>.jsonl`
into its run directory, per engine step its start, seconds and what it computed, per request when it
reached the scheduler and which step gave its first token). One client alternates their timed passes
A B B A, so a point's plain pass runs seconds from its hooked twin's. The hooked runs calibrate
`cpu-served` (`served_fit`); the plain runs beside them are what `validate` counts: this VM's speed
drifts by 15-25% between windows minutes apart (results/observations: aa-paired-long), which no cost
model fitted in one window can follow.
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
    cfg = presets.resolve("prefill-cap", repeats=repeats, backend="cpu")
    cfg["preset"] = f"sim-served-rate{rate}"
    cfg["description"] = (f"the simulator's validation points at {rate} req/s, each served twice at once: plain "
                          "(validation) and with every EngineCore step timed inside the engine process "
                          f"(`<point>{HOOKED_SUFFIX}`, calibration); timed passes alternating A B B A")
    cfg["modes"] = ["serve"]
    cfg["workloads"] = dict(VALIDATION_WORKLOADS)
    cfg["request_rate"] = {wl: rate for wl in VALIDATION_WORKLOADS}
    cfg["variants"] = [v for p in points for v in (p, p + HOOKED_SUFFIX)]
    cfg["variant_defs"] = {}
    for p in points:
        cfg["variant_defs"][p] = dict(VALIDATION_POINTS[p])
        cfg["variant_defs"][p + HOOKED_SUFFIX] = served_variant(VALIDATION_POINTS[p])
    cfg["interleave"] = "passes"
    cfg["serve_passes"] = passes
    presets.check_interleave(cfg, "cpu", {})
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
