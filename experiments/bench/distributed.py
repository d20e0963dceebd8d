"""vLLM's own distributed engine through the bench: TP / PP / DP and the executor backend.

`make bench TP=2 PP=1 DP=1 DISTRIBUTED_BACKEND=mp|ray` (and `--nnodes/--node-rank/--master-addr`
for multi-node `mp`) become vLLM engine arguments of every variant, so the patched engine is
what every rank runs (each rank imports vLLM from the variant's PYTHONPATH). The manifest
records them. Checked before any engine starts, each with a message naming the cause: a TP
that does not divide the model's attention heads, a missing Ray, an unreachable master.
"""
from __future__ import annotations

import json
import socket
from pathlib import Path

BACKENDS = ("mp", "ray")


def model_heads(model: str) -> int | None:
    """num_attention_heads of a local model directory; None for hub ids (vLLM checks those)."""
    config = Path(model) / "config.json"
    if not config.exists():
        return None
    cfg = json.loads(config.read_text())
    return cfg.get("num_attention_heads") or cfg.get("text_config", {}).get("num_attention_heads")


def check_ray() -> str:
    try:
        import ray
    except ImportError as exc:
        raise SystemExit(
            "DISTRIBUTED_BACKEND=ray but Ray is not installed in this environment "
            f"({exc}): neither vLLM 0.32.0's wheels (no `ray` extra) nor this repo's pinned "
            "requirements include it. `pip install ray` into the venv on every node, or use "
            "DISTRIBUTED_BACKEND=mp") from None
    return ray.__version__


def check_reachable(addr: str, port: int, timeout_s: float = 5.0) -> None:
    try:
        with socket.create_connection((addr, port), timeout=timeout_s):
            pass
    except OSError as exc:
        raise SystemExit(f"master {addr}:{port} is unreachable from this node ({exc}): start node rank 0 "
                         "first, and check --master-addr/--master-port and the firewall") from None


def engine_args(model: str, *, tp: int = 1, pp: int = 1, dp: int = 1, backend: str | None = None,
                nnodes: int = 1, node_rank: int = 0, master_addr: str | None = None,
                master_port: int | None = None, platform: str = "cpu") -> dict:
    """Validated vLLM engine arguments for a distributed run ({} for the single-process default).
    `platform`: the bench backend (cpu|cuda) the engine runs on."""
    for name, value in (("TP", tp), ("PP", pp), ("DP", dp), ("nnodes", nnodes)):
        if value < 1:
            raise SystemExit(f"{name} must be >= 1, got {value}")
    if backend is not None and backend not in BACKENDS:
        raise SystemExit(f"DISTRIBUTED_BACKEND must be one of {BACKENDS}, got {backend!r}")
    heads = model_heads(model)
    if heads is not None and heads % tp:
        divisors = [d for d in range(1, heads + 1) if heads % d == 0]
        raise SystemExit(f"TP={tp} does not divide the {heads} attention heads of {model}: choose TP from "
                         f"{divisors} (models/tiny-llama has 4 heads and runs TP=2 on CPU)")
    if nnodes > 1:
        if backend == "ray":
            raise SystemExit("--nnodes is for the mp backend; with Ray, start a Ray cluster and use "
                             "DISTRIBUTED_BACKEND=ray on its head node")
        if not master_addr:
            raise SystemExit("--nnodes > 1 needs --master-addr (the address of node rank 0)")
        if not 0 <= node_rank < nnodes:
            raise SystemExit(f"--node-rank must be in [0, {nnodes}), got {node_rank}")
    if backend == "ray" and platform == "cpu":
        # vLLM 0.32.0: CpuPlatform keeps the empty default `ray_device_key`. Tried here with Ray 2.60.0
        # (local head on loopback, started fine): EngineCore failed with "ValueError: current
        # platform cpu does not support ray." (vllm/v1/executor/ray_utils.py).
        raise SystemExit("DISTRIBUTED_BACKEND=ray is not supported by vLLM 0.32.0's CPU platform (it declares "
                         "no Ray device, `ray_device_key` is empty; its EngineCore fails with 'current "
                         "platform cpu does not support ray.'): use DISTRIBUTED_BACKEND=mp on CPU, Ray on GPU nodes")
    if backend == "ray":
        check_ray()
    args: dict = {}
    if tp != 1:
        args["tensor_parallel_size"] = tp
    if pp != 1:
        args["pipeline_parallel_size"] = pp
    if dp != 1:
        args["data_parallel_size"] = dp
    if backend:
        args["distributed_executor_backend"] = backend
    if nnodes > 1:
        args.update(nnodes=nnodes, node_rank=node_rank, master_addr=master_addr)
        if master_port:
            args["master_port"] = master_port
        if node_rank > 0:
            check_reachable(master_addr, master_port or 29501)
    return args


def cpu_env(args: dict) -> dict[str, str]:
    """CPU engine with more than one rank: simulate NUMA nodes (one per rank) on a one-node machine."""
    world = args.get("tensor_parallel_size", 1) * args.get("pipeline_parallel_size", 1)
    return {"VLLM_CPU_SIM_MULTI_NUMA": "1"} if world > 1 else {}
