"""Build bench configurations with vLLM's own argument code, in the engine a variant imports.

    python -m tests.bench_config_probe <cases.json> <out.json>

Run by tests/test_bench_cuda_presets.py with the baseline or the patched engine on PYTHONPATH
(patch 0002 adds an engine argument that only the patched engine knows). For each case:
`EngineArgs(**engine_args).create_engine_config()` as far as it builds without a device, and
the bench's `vllm serve` / `vllm bench serve` arguments through vLLM's own parsers. Writes one
JSON record per case: the resolved fields, or the error that a user would have hit.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def serve_parser():
    from vllm.entrypoints.cli.serve import ServeSubcommand
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    top = FlexibleArgumentParser(prog="vllm")
    ServeSubcommand().subparser_init(top.add_subparsers(dest="subparser"))
    return top


def bench_serve_parser():
    from vllm.benchmarks.serve import add_cli_args
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = FlexibleArgumentParser(prog="vllm bench serve")
    add_cli_args(parser)
    return parser


def same(got, want) -> bool:
    if isinstance(want, dict):
        got = got if isinstance(got, dict) else {k: getattr(got, k, None) for k in want}
        return all(same(got.get(k), v) for k, v in want.items())
    return got == want or str(got) == str(want) or (isinstance(want, str) and want in str(got))


def probe(case: dict) -> dict:
    from vllm.engine.arg_utils import AsyncEngineArgs, EngineArgs
    from vllm.entrypoints.launchers.cli_args import validate_parsed_serve_args

    out: dict = {"name": case["name"]}
    try:
        cfg = EngineArgs(model=case["model"], seed=case["seed"], **case["engine_args"]).create_engine_config()
        out["config"] = {"dtype": str(cfg.model_config.dtype), "max_model_len": cfg.model_config.max_model_len,
                         "num_gpu_blocks_override": cfg.cache_config.num_gpu_blocks_override,
                         "gpu_memory_utilization": cfg.cache_config.gpu_memory_utilization,
                         "tensor_parallel_size": cfg.parallel_config.tensor_parallel_size,
                         "enforce_eager": cfg.model_config.enforce_eager}
    except Exception as exc:
        out["config_error"] = f"{type(exc).__name__}: {exc}"[:2000]
    try:
        ns = serve_parser().parse_args(case["server_args"])
        validate_parsed_serve_args(ns)
        ns.model = ns.model_tag or ns.model
        parsed = AsyncEngineArgs.from_cli_args(ns)
        out["serve_mismatches"] = [k for k, v in case["engine_args"].items() if not same(getattr(parsed, k), v)]
        out["serve_host_port"] = [ns.host, ns.port]
    except (Exception, SystemExit) as exc:
        out["serve_error"] = f"{type(exc).__name__}: {exc}"[:2000]
    try:
        for args in case["client_args"]:
            bench_serve_parser().parse_args(args)
        out["client_ok"] = True
    except (Exception, SystemExit) as exc:
        out["client_error"] = f"{type(exc).__name__}: {exc}"[:2000]
    return out


def main() -> int:
    cases = json.loads(Path(sys.argv[1]).read_text())
    # argparse prints to stderr and raises SystemExit on an unknown flag: keep it as the case's error
    argparse.ArgumentParser.exit = lambda self, status=0, message=None: (_ for _ in ()).throw(
        SystemExit(f"argparse exit {status}: {message}"))
    Path(sys.argv[2]).write_text(json.dumps([probe(c) for c in cases], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
