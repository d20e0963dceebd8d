"""Real serving runs of the validation points, through the ordinary bench (one bench per arrival rate).

    python -m experiments.sim.real_runs [--repeats 2] [--rates 16,inf] [--out results/reference/sim/real]

Costs CPU: every run is a `vllm serve` start (~40 s on 2 cores) plus the workloads;
3 points x 2 repeats x 2 rates is about 12 minutes. The bench records machine load
at start in its manifest; other engineers' jobs on the same 2 cores are part of
the spread these runs show.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from experiments.bench import presets, runner
from experiments.sim.points import VALIDATION_POINTS, VALIDATION_RATES, VALIDATION_WORKLOADS
from tools.pins import REPO_ROOT

DEFAULT_OUT = REPO_ROOT / "results" / "reference" / "sim" / "real"


def bench_config(rate: str, repeats: int) -> dict:
    cfg = presets.resolve("prefill-cap", repeats=repeats, backend="cpu")
    cfg["preset"] = f"sim-validation-rate{rate}"
    cfg["description"] = f"real runs of the simulator's validation points at {rate} req/s"
    cfg["variants"] = list(VALIDATION_POINTS)
    cfg["variant_defs"] = {k: dict(v) for k, v in VALIDATION_POINTS.items()}
    cfg["modes"] = ["serve"]
    cfg["workloads"] = dict(VALIDATION_WORKLOADS)
    cfg["request_rate"] = {wl: rate for wl in VALIDATION_WORKLOADS}
    return cfg


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(prog="python -m experiments.sim.real_runs", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--rates", default=",".join(VALIDATION_RATES))
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    for rate in args.rates.split(","):
        final = runner.run_bench(bench_config(rate, args.repeats), args.out,
                                 argv=["python", "-m", "experiments.sim.real_runs", *argv])
        print(f"[sim real runs] rate {rate}: {final}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
