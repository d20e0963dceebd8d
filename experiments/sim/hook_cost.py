"""What the served step hook costs: a paired bench of the baseline server with and without it.

    python -m experiments.sim.hook_cost [OUT_DIR]     (default results/observations; ~7 min on 2 cores)

`experiments.sim.served` calibrates the `cpu-served` cost model on servers that run with
`served_hook/` armed (every EngineCore step timed and logged). If the hook slowed the engine,
the model would carry that. This runs the bench's paired design (`interleave: passes`, as
`PRESET=aa-paired`): per repeat three servers up at once, baseline, baseline-aa (the A/A floor)
and baseline-hook (the served variant of baseline), their timed passes alternating, on both
workloads at rate inf; the verdict on baseline-hook vs baseline is the hook's cost.
"""
from __future__ import annotations

import sys
from pathlib import Path

from experiments.bench import machine, presets, runner
from experiments.sim.served import served_variant
from tools.pins import REPO_ROOT


def bench_config(repeats: int = 2) -> dict:
    cfg = presets.resolve("aa-paired", repeats=repeats)
    cfg["preset"] = "served-hook-cost"
    cfg["description"] = "paired: baseline vs the same server with the served step hook armed (SIM_SERVED_STEPS=1)"
    cfg["variants"] = ["baseline", "baseline-aa", "baseline-hook"]
    cfg["variant_defs"]["baseline-hook"] = served_variant(cfg["variant_defs"]["baseline"])
    cfg["workloads"] = {"shared_prefix_chat": {}, "mixed_long_short": {}}
    cfg["request_rate"] = {"shared_prefix_chat": "inf", "mixed_long_short": "inf"}
    cfg["serve_passes"] = 4
    cfg["machine_before"] = machine.sample_idle_machine()
    return cfg


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0]) if argv else REPO_ROOT / "results" / "observations"
    runner.run_bench(bench_config(), out, argv=["python", "-m", "experiments.sim.hook_cost", *argv])
    return 0


if __name__ == "__main__":
    sys.exit(main())
