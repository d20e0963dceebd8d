"""Request rates set from the capacity measured on this machine, in this run.

A preset may give a workload's rate as a share of capacity (`rate_from_capacity: {workload: 0.5}`):
before the compared runs, the reference arm's server serves that workload once at rate inf (after
the usual warm-up) and the workload's rate becomes share x the request throughput it reached. Every
arm then runs at that one rate, and the probe is kept in the manifest (`capacity`). A fixed rate
would sit at capacity on one machine and far below it on another, where queueing turns small speed
differences into tenfold TTFT differences (seen here: mixed_long_short at 16 req/s).
"""
from __future__ import annotations

from pathlib import Path


def probe(cfg: dict, metas: dict[str, dict], out_dir: Path, reference: str = "baseline") -> dict:
    """{workload: {share, request_throughput, rate, run_dir}} for each workload of `rate_from_capacity`."""
    from experiments.bench import serve

    found = {}
    for wl, share in (cfg.get("rate_from_capacity") or {}).items():
        if not 0 < share <= 1:
            raise ValueError(f"rate_from_capacity[{wl!r}] must be a share in (0, 1], got {share}")
        if wl not in metas:
            raise ValueError(f"rate_from_capacity names {wl!r}, which the preset does not serve")
        pcfg = {**cfg, "workloads": {wl: cfg["workloads"][wl]}, "request_rate": {wl: "inf"}, "serve_passes": 1}
        run_dir = out_dir / f"capacity-{wl}"
        run_dir.mkdir(parents=True)
        res = serve.run_serve_group(pcfg, [reference], {wl: metas[wl]}, {reference: run_dir})[reference]
        cap = float(res["workloads"][wl]["request_throughput"])
        found[wl] = {"share": share, "request_throughput": cap, "rate": round(share * cap, 2),
                     "probe": f"{reference} at rate inf, 1 pass", "run_dir": run_dir.name}
    return found
