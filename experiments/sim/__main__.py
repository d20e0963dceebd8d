"""Virtual-clock simulator around vLLM's real Scheduler: `python -m experiments.sim [command]`.

    (no command) / all   what `make sim` runs, from committed inputs, no engine start (~3-5 min):
                         decisions + served-fit + validate + benches + project + speed
    decisions            replay the recorded real runs step by step: scheduled tokens identical?
    validate             simulate the configurations of the committed real runs, compare (table + plot),
                         once with the in-process cost model (cpu) and once with the served one (cpu-served)
    benches              simulated benches (bench layout, 5 arrival seeds) of the validation points
    project              the same points on an H100 / H200 roofline (modeled, not measured)
    speed                wall time of one 256-request simulation and of a 30-point sweep
    calibrate            CPU cost: record real engine steps (2 engine starts) and fit the cost model;
                         `--points cap512` re-records only that point (after the patch series changed)
    served               CPU cost: real `vllm serve` runs of the validation points, each point served plain
                         (validation) and with every EngineCore step timed inside the engine process
                         (calibration), runs alternating; one bench per entry of `points.SERVED_BENCHES`
                         (`--benches rate16,rateinf,long-docs --repeats 2`, ~40 min here)
    served-fit           from those runs: the TTFT split (client -> scheduler -> first token -> client),
                         served step periods vs the in-process model, and the `cpu-served` cost model

Outputs go to results/reference/sim/ (README there). Every simulated figure carries
the label "simulated (cost model X)".
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from experiments.common.results import write_json_atomic
from tools.pins import REPO_ROOT

OUT = REPO_ROOT / "results" / "reference" / "sim"
SEEDS = [0, 1, 2, 3, 4]


def rel(p: Path) -> str:
    p = Path(p).resolve()
    return str(p.relative_to(REPO_ROOT)) if p.is_relative_to(REPO_ROOT) else str(p)


def cmd_decisions(out: Path) -> dict:
    from experiments.sim import decisions
    from experiments.sim.cost_models import CALIBRATION_DIR

    paths = sorted(CALIBRATION_DIR.glob("recorded-*.json"))
    if not paths:
        raise SystemExit(f"no recorded runs in {rel(CALIBRATION_DIR)}: run `python -m experiments.sim calibrate`")
    result = {"checks": [decisions.check_recorded(p) for p in paths]}
    for c in result["checks"]:
        c["recorded"] = rel(Path(c["recorded"]))
        print(f"[sim decisions] {c['point']}: {c['real_steps']} real steps vs {c['sim_steps']} simulated, "
              f"identical: {c['identical']}")
    write_json_atomic(out / "decisions.json", result)
    return result


def validation_benches(out: Path) -> list[tuple[Path, bool]]:
    """(real bench, same window as the served calibration?): the served benches first (their plain
    servers ran beside the hooked ones the cost model is fitted on), then older sets, shown apart."""
    from experiments.bench.store import complete_benches
    from experiments.sim import validate

    served = complete_benches(out / "served")
    if not served:
        raise SystemExit(f"no complete served runs under {rel(out / 'served')}: run `python -m experiments.sim served`")
    older = complete_benches(out / "real") + [REPO_ROOT / b for b in validate.REFERENCE_REAL
                                              if (REPO_ROOT / b / "manifest.json").is_file()]
    return [(b, True) for b in served] + [(b, False) for b in older]


def cmd_validate(out: Path) -> dict:
    from experiments.sim import validate
    from experiments.sim.cost_models import CPU_SERVED_MODEL_PATH

    benches = validation_benches(out)
    made = {}
    for cost_model, stem in validate.COMPARISONS.items():
        if cost_model == "cpu-served" and not CPU_SERVED_MODEL_PATH.is_file():
            print(f"[sim validate] no {rel(CPU_SERVED_MODEL_PATH)}: the cpu-served comparison is skipped "
                  "(`python -m experiments.sim served` then `served-fit`)")
            continue
        comparison = {"benches": [validate.compare_bench(b, cost_model, same_window) for b, same_window in benches]}
        comparison["label"] = comparison["benches"][0]["label"]
        comparison["cost_model"] = cost_model
        # the tally: real runs from the served calibration's window and CPU; the others are shown apart
        rows = [r for b in validate.counted_benches(comparison) for r in b["rows"]]
        other = [r for b in validate.counted_benches(comparison, counted=False) for r in b["rows"]]
        comparison["within"] = sum(r["within"] for r in rows)
        comparison["rows"] = len(rows)
        comparison["not_counted"] = {"within": sum(r["within"] for r in other), "rows": len(other)}
        vdir = out / "validation"
        write_json_atomic(vdir / f"{stem}.json", comparison)
        (vdir / f"{stem}.md").write_text(validate.markdown(comparison))
        validate.plot(comparison, vdir / f"{stem}.png", source=rel(vdir / f"{stem}.json"))
        print(f"[sim validate] cost model {cost_model}: {comparison['within']}/{comparison['rows']} rows within "
              f"max(10%, real spread) in the calibration's window; older sets {comparison['not_counted']['within']}/"
              f"{comparison['not_counted']['rows']} (not counted)")
        made[cost_model] = comparison
    return made


def cmd_served_fit(out: Path) -> dict | None:
    from experiments.sim import served_fit

    if not any((out / "served").glob("*/manifest.json")):
        print(f"[sim served-fit] no served runs under {rel(out / 'served')}: skipped "
              "(`python -m experiments.sim served` records them)")
        return None
    model = served_fit.write(out)
    ho = model.fit["held_out"]
    print(f"[sim served-fit] cpu-served: held-out steps median |error| {ho['median_abs_rel_error']:.1%}, "
          f"summed {ho['sum_rel_error']:+.1%}; frontend {json.dumps(model.frontend)}")
    return model.to_json()


def validation_configs(cost_model: str, rates=None) -> list[dict]:
    from experiments.sim import bench_layout
    from experiments.sim.points import VALIDATION_POINTS, VALIDATION_RATES, VALIDATION_WORKLOADS

    return [bench_layout.sim_config(f"sim-validation-rate{rate}", VALIDATION_POINTS, dict(VALIDATION_WORKLOADS),
                                    {wl: rate for wl in VALIDATION_WORKLOADS}, SEEDS, cost_model)
            for rate in (rates or VALIDATION_RATES)]


def cmd_benches(out: Path, cost_model: str = "cpu", rates=None, subdir: str = "benches") -> list[Path]:
    from experiments.sim import bench_layout

    made = []
    for cfg in validation_configs(cost_model, rates):
        d = bench_layout.simulate_bench(cfg, out / subdir, argv=["python", "-m", "experiments.sim", "benches"],
                                        stable_id=True)
        print(f"[sim benches] {rel(d)}")
        made.append(d)
    return made


PROJECTION_SHAPE = "experiments/sim/shapes/llama-3.1-8b.json"


def cmd_project(out: Path) -> list[Path]:
    """The validation points at capacity (rate inf) and at 16 req/s, each step costed on an H100/H200
    roofline for a Llama-3.1-8B shape (the tiny model's steps take microseconds there): modeled, not
    measured. The scheduler keeps the bench's engine arguments (2048-token steps, its KV blocks)."""
    return [d for gpu in ("h100", "h200")
            for d in cmd_benches(out, f"roofline-{gpu}:{PROJECTION_SHAPE}", subdir="projection")]


SPEED_REPEATS = 3


def cmd_speed(out: Path) -> dict:
    """Wall time of one 256-request simulation (each its own process, as a user's call is: median of
    SPEED_REPEATS, all kept) and of a 30-point sweep."""
    import os
    import statistics

    from experiments.sim import api

    walls, one = [], None
    for _ in range(SPEED_REPEATS):
        t0 = time.perf_counter()
        one = api.simulate("baseline", None, "mixed_long_short", rate=16, seed=0, cost_model="cpu",
                           workload_overrides={"num_requests": 256})
        walls.append(time.perf_counter() - t0)
    points = {f"mbt{m}": {"engine": "baseline", "engine_args": {"max_num_batched_tokens": m}}
              for m in (512, 768, 1024, 1536, 2048)}
    points.update({f"cap{c}": {"engine": "patched", "engine_args": {"long_prefill_token_threshold": c,
                                                                    "short_prefill_first": "bounded"}}
                   for c in (128, 256, 512, 768, 1024)})
    t0 = time.perf_counter()
    res = api.sweep(points, "mixed_long_short", rates=["16"], seeds=[0, 1, 2], cost_model="cpu",
                    workload_overrides={"num_requests": 256})
    sweep_s = time.perf_counter() - t0
    speed = {"machine_cores": os.cpu_count(), "loadavg_1m_after": os.getloadavg()[0],
             "single": {"what": "mixed_long_short, 256 requests, 16 req/s, baseline, cost model cpu",
                        "repeats": SPEED_REPEATS, "wall_s_each": walls,
                        "wall_s_including_process_start": statistics.median(walls),
                        "simulation_loop_s": one["loop_wall_s"], "steps": len(one["steps"]), "label": one["label"]},
             "sweep": {"what": f"{len(res)} points: 10 engine configurations x 3 arrival seeds, mixed_long_short "
                               "256 requests at 16 req/s, one simulator process per engine",
                       "points": len(res), "wall_s": sweep_s,
                       "simulation_loop_s_total": sum(r["loop_wall_s"] for r in res)}}
    write_json_atomic(out / "speed.json", speed)
    print(f"[sim speed] one 256-request run {statistics.median(walls):.1f} s, median of {SPEED_REPEATS} "
          f"({min(walls):.1f}-{max(walls):.1f} s; loop {one['loop_wall_s']:.2f} s); {len(res)}-point sweep {sweep_s:.1f} s")
    return speed


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(prog="python -m experiments.sim", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", nargs="?", default="all",
                    choices=["all", "decisions", "validate", "benches", "project", "speed", "calibrate",
                             "served", "served-fit"])
    ap.add_argument("--out", type=Path, default=OUT)
    args, rest = ap.parse_known_args(argv)
    out = args.out
    if args.command == "calibrate":
        from experiments.sim import calibrate
        points = rest[rest.index("--points") + 1].split(",") if "--points" in rest else calibrate.RECORDED_POINTS
        cm = calibrate.calibrate(points)
        print(f"[sim calibrate] recorded {', '.join(points)}" +
              (f"; held-out error {json.dumps(cm.fit['held_out'])}" if cm else ""))
        return 0
    if args.command == "served":
        from experiments.sim import served
        opts = dict(zip(rest[::2], rest[1::2]))
        served.record(benches=opts.get("--benches", ",".join(served.SERVED_BENCHES)).split(","),
                      repeats=int(opts.get("--repeats", 2)),
                      points=opts["--points"].split(",") if "--points" in opts else None,
                      out=out / "served", argv=["python", "-m", "experiments.sim", "served", *rest])
        return 0
    steps = {"decisions": cmd_decisions, "served-fit": cmd_served_fit, "validate": cmd_validate,
             "benches": cmd_benches, "project": cmd_project, "speed": cmd_speed}
    for name in (steps if args.command == "all" else [args.command]):
        steps[name](out)
    if out.resolve() == OUT.resolve():
        from experiments.sim import report
        report.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
