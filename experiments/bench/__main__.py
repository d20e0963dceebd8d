"""python -m experiments.bench --preset default|smoke|overhead-0001|aa [--repeats N]"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from experiments.bench import distributed, machine, presets, processes, runner
from experiments.bench.presets import detect_backend


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(prog="python -m experiments.bench", description=__doc__)
    ap.add_argument("--preset", default="default", choices=sorted(presets.PRESETS))
    ap.add_argument("--repeats", type=int, help="override the preset's repeat count")
    ap.add_argument("--variants", help="comma-separated variants (default: the preset's)")
    ap.add_argument("--model", help="model dir or hub id (default: MODEL env or the embedded tiny Llama)")
    ap.add_argument("--out", type=Path, default=runner.DEFAULT_OUT, help="results root")
    ap.add_argument("--profile-dir", type=Path, help="also capture torch profiler traces here (adds overhead)")
    ap.add_argument("--allow-busy", action="store_true",
                    help=f"measure even if other processes keep more than {machine.BUSY_SHARE_LIMIT * 100:.0f}%% of the "
                         "CPUs busy before the start (the manifest then marks the bench busy)")
    ap.add_argument("--core-layout", choices=processes.CORE_LAYOUTS, default="auto",
                    help="where serve runs put their processes (experiments.bench.processes.core_layout; "
                         "reserved: one rank only; PRESET=core-layout compares it, see results/observations/)")
    ap.add_argument("--interleave", choices=["runs", "passes"],
                    help="passes: every variant's server up at once, timed passes alternating, compared within "
                         "each repeat (a paired bench; its A/A floor needs baseline-aa among the variants, e.g. "
                         "--variants baseline,patched,baseline-aa); default: the preset's (runs for most)")
    dist = ap.add_argument_group("vLLM distributed engine (every variant, every rank)")
    dist.add_argument("--tp", type=int, default=1, help="tensor_parallel_size (TP=)")
    dist.add_argument("--pp", type=int, default=1, help="pipeline_parallel_size (PP=)")
    dist.add_argument("--dp", type=int, default=1, help="data_parallel_size (DP=)")
    dist.add_argument("--distributed-backend", choices=distributed.BACKENDS,
                      help="distributed_executor_backend (DISTRIBUTED_BACKEND=)")
    dist.add_argument("--nnodes", type=int, default=1, help="mp multi-node: number of nodes")
    dist.add_argument("--node-rank", type=int, default=0, help="mp multi-node: this node's rank")
    dist.add_argument("--master-addr", help="mp multi-node: address of node rank 0")
    dist.add_argument("--master-port", type=int, help="mp multi-node: port of node rank 0")
    args = ap.parse_args(argv)
    model = args.model or os.environ.get("MODEL") or presets.EMBEDDED_MODEL
    try:
        dist_args = distributed.engine_args(
            model, tp=args.tp, pp=args.pp, dp=args.dp, backend=args.distributed_backend, nnodes=args.nnodes,
            node_rank=args.node_rank, master_addr=args.master_addr, master_port=args.master_port,
            platform=detect_backend())
    except SystemExit as exc:
        print(f"[bench] refused: {exc}", file=sys.stderr)
        return 2
    try:
        cfg = presets.resolve(args.preset, repeats=args.repeats, model=model, backend=detect_backend(),
                              variants=args.variants.split(",") if args.variants else None, distributed=dist_args,
                              interleave=args.interleave)
    except SystemExit as exc:
        print(f"[bench] refused: {exc}", file=sys.stderr)
        return 2
    try:
        processes.core_layout(args.core_layout, ranks=args.tp * args.pp * args.dp)
    except SystemExit as exc:
        print(f"[bench] refused: {exc}", file=sys.stderr)
        return 2
    cfg["core_layout"] = args.core_layout
    if args.profile_dir:
        cfg["profile_dir"] = str(args.profile_dir.resolve())
    cfg["machine_before"] = machine.sample_idle_machine()
    try:
        cfg["busy_machine"] = machine.check_quiet(cfg["machine_before"], allow_busy=args.allow_busy)
    except SystemExit as exc:
        print(f"[bench] refused: {exc}", file=sys.stderr)
        return 2
    print(f"[bench] preset {args.preset}: {cfg['description']}; variants {cfg['variants']}, "
          f"{cfg['repeats']} repeat(s), modes {cfg['modes']}, model {cfg['model']}", flush=True)
    try:
        runner.run_bench(cfg, args.out, argv=["python", "-m", "experiments.bench", *argv])
    except (KeyboardInterrupt, runner.BenchInterrupted):
        return 130
    except RuntimeError as exc:
        print(f"[bench] FAILED: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
