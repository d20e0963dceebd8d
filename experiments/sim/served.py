"""The served-engine calibration and its validation runs, measured in the same window.

    python -m experiments.sim served [--repeats 2] [--benches rate16,rateinf,long-docs] [--points P,...]

One bench per entry of `points.SERVED_BENCHES` (the two validation rates on both bench workloads;
the long-document workload with its two arrival patterns) in which every point runs twice per repeat: plain, and with
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
from experiments.sim.points import SERVED_BENCHES
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


def bench_config(name: str, repeats: int, points: list[str] | None = None, passes: int = SERVE_PASSES) -> dict:
    """The served bench `name` (a key of SERVED_BENCHES): per point a plain variant and its hooked twin,
    runs alternating; `points` picks some of its points (default: all)."""
    if name not in SERVED_BENCHES:
        raise SystemExit(f"unknown served bench {name!r}; known: {', '.join(SERVED_BENCHES)}")
    defs, workloads, rates = SERVED_BENCHES[name]
    unknown = sorted(set(points or []) - set(defs))
    if unknown:
        raise SystemExit(f"served bench {name!r} has no point(s) {unknown}; its points: {', '.join(defs)}")
    points = points or list(defs)
    cfg = presets.resolve("prefill-cap", repeats=repeats, backend="cpu")
    cfg["preset"] = f"sim-served-{name}"
    cfg["description"] = (f"the simulator's validation points ({name}: "
                          + ", ".join(f"{wl} at {r} req/s" for wl, r in rates.items())
                          + "), each served twice per repeat: plain (validation) and with every EngineCore step "
                          f"timed inside the engine process (`<point>{HOOKED_SUFFIX}`, calibration); one server at "
                          "a time, runs alternating A B B A")
    cfg["modes"] = ["serve"]
    cfg["workloads"] = dict(workloads)
    cfg["request_rate"] = dict(rates)
    cfg["variants"] = [v for p in points for v in (p, p + HOOKED_SUFFIX)]
    cfg["variant_defs"] = {}
    for p in points:
        cfg["variant_defs"][p] = dict(defs[p])
        cfg["variant_defs"][p + HOOKED_SUFFIX] = served_variant(defs[p])
    cfg["serve_passes"] = passes
    cfg["machine_before"] = machine.sample_idle_machine()
    cfg["busy_machine"] = machine.check_quiet(cfg["machine_before"], allow_busy=True)
    return cfg


def record(benches=tuple(SERVED_BENCHES), repeats: int = 2, points: list[str] | None = None,
           out: Path = SERVED_DIR, argv: list[str] | None = None) -> list[Path]:
    unknown = [b for b in benches if b not in SERVED_BENCHES]
    if unknown:  # before the first bench spends its half hour
        raise SystemExit(f"unknown served bench(es) {unknown}; known: {', '.join(SERVED_BENCHES)}")
    known = {p for name in benches for p in SERVED_BENCHES[name][0]}
    if points and set(points) - known:
        raise SystemExit(f"no served bench of {', '.join(benches)} has point(s) {sorted(set(points) - known)}")
    made = []
    for name in benches:
        pick = [p for p in points if p in SERVED_BENCHES[name][0]] if points else None
        if pick == []:
            continue
        made.append(runner.run_bench(bench_config(name, repeats, pick), out,
                                     argv=argv or ["python", "-m", "experiments.sim", "served"]))
        print(f"[sim served] {name}: {made[-1]}", flush=True)
    return made
