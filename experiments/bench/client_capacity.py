"""Can the load client outrun the server? `vllm bench serve` against an instant stub.

Runs vLLM's own client on the mixed workload at request rate inf against
experiments.bench.stub_server and reports the request rate it achieved; next to
the real engine's sustained request rate from a complete bench (if given), the
ratio says how much headroom the client has (target >= 10x).
    python -m experiments.bench.client_capacity [--bench results/reference/cpu/<default bench>]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from experiments.bench import processes, serve, workloads
from experiments.common.results import write_result
from tools import pins


def measure(num_prompts: int, out_dir: Path) -> dict:
    wl = workloads.generate(workloads.make_spec("shared_prefix_chat", num_requests=num_prompts), seed=0)
    meta = workloads.save(wl, out_dir / "workloads")
    port = serve.free_port()
    server = processes.start([sys.executable, "-m", "experiments.bench.stub_server", "--port", str(port)],
                             processes.variant_env("baseline"), out_dir / "stub.log")
    try:
        serve.wait_ready(f"http://127.0.0.1:{port}", server, 60)
        cfg = {"model": str(pins.REPO_ROOT / "models" / "tiny-llama"), "seed": 0, "request_rate": {}}
        plan = {**serve.client_plan(cfg, {wl.name: meta}, [{"name": "stub", "port": port, "pid": None,
                                                            "run_dir": out_dir}]),
                "reset_prefix_cache": False}  # the stub has no cache and no dev routes
        client = serve.run_client_plan(plan, out_dir, [server])
        return serve.summarize_workload(cfg, wl.name, meta, client["passes"], out_dir)
    finally:
        processes.kill_tree(server, grace_s=5)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m experiments.bench.client_capacity", description=__doc__)
    ap.add_argument("--num-prompts", type=int, default=512)
    ap.add_argument("--bench", type=Path, help="a complete bench dir to compare with (its serve runs)")
    ap.add_argument("--out", type=Path, default=pins.REPO_ROOT / "results" / "reference" / "cpu" / "client_capacity.json")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        stub = measure(args.num_prompts, Path(tmp))
    result = {"stub_request_throughput": stub["request_throughput"],
              "stub_output_throughput": stub["output_throughput"], "stub_completed": stub["completed"]}
    if args.bench:
        from experiments.bench import store

        frame = store.summary_frame(args.bench)
        sel = frame[(frame.metric == "request_throughput") & (frame.variant == "baseline")
                    & (frame.workload == "shared_prefix_chat")]
        engine_rps = float(sel["median"].iloc[0])
        result.update(engine_request_throughput=engine_rps, bench=str(args.bench),
                      headroom=stub["request_throughput"] / engine_rps)
    write_result(args.out, result, config={"num_prompts": args.num_prompts, "workload": "shared_prefix_chat",
                                           "request_rate": "inf"})
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
