"""Public vLLM-on-GPU experiments -> the facts a replay needs (committed under results/reference/sim/public_gpu/).

Source: the BLIS simulator's repository (`inference-sim/inference-sim`), folder `eval/ground_truth/` at
commit SOURCE_COMMIT (removed from its newest tree). Each experiment there holds `exp-config.yaml`,
`profile.yaml` (the load generator's workload), `vllm.log` and `traces.json`: one OpenTelemetry
`llm_request` span per request, written by vLLM's engine (so every time in it is the server's).

Per request we keep its arrival offset (span start: the server's arrival time), prompt and output tokens
and the measured TTFT, E2E, queue, prefill and decode times. Per experiment: the engine configuration,
KV blocks, block size, dtype and vLLM version as the log of the last server start states them, the
workload from profile.yaml, and where it came from. The raw traces are not committed.

    python -m experiments.sim.public_gpu extract --mirror <git dir of the fetched repository>
"""
from __future__ import annotations

import ast
import csv
import io
import json
import re
import subprocess
from pathlib import Path

import yaml

from experiments.sim.errors import SimInputError
from tools.pins import REPO_ROOT

SOURCE_REPO = "inference-sim/inference-sim"
SOURCE_COMMIT = "e7a4aa3715982f089bddd0441e85e0a7d1690ec2"
SOURCE_DIR = "eval/ground_truth"
EXPERIMENTS = ("jan20-codellama-prefill-1", "jan20-codellama-train-1", "jan20-prefill-llama7b-tp1-1",
               "jan21-llama7b-train-1")
FACTS_DIR = REPO_ROOT / "results" / "reference" / "sim" / "public_gpu"
MANIFEST = FACTS_DIR / "experiments.json"

# span attribute -> column of the per-request CSV (seconds unless a token count)
SPAN_FIELDS = {"gen_ai.usage.prompt_tokens": "prompt_tokens", "gen_ai.usage.completion_tokens": "output_tokens",
               "gen_ai.latency.time_to_first_token": "ttft_s", "gen_ai.latency.e2e": "e2e_s",
               "gen_ai.latency.time_in_queue": "queue_s", "gen_ai.latency.time_in_model_prefill": "prefill_s",
               "gen_ai.latency.time_in_model_decode": "decode_s"}
COLUMNS = ("index", "arrival_s", *SPAN_FIELDS.values())
TOKEN_COLUMNS = ("index", "prompt_tokens", "output_tokens")


def git_reader(mirror: Path, commit: str = SOURCE_COMMIT):
    """Reads `<experiment>/<file>` of the source folder from a git directory (no work tree needed)."""
    def read(experiment: str, name: str) -> str:
        spec = f"{commit}:{SOURCE_DIR}/{experiment}/{name}"
        proc = subprocess.run(["git", "--git-dir", str(mirror), "show", spec], capture_output=True, text=True)
        if proc.returncode != 0:
            raise SimInputError(f"cannot read {spec} from {mirror}: {proc.stderr.strip()}")
        return proc.stdout
    return read


def dir_reader(root: Path):
    """Reads `<root>/<experiment>/<file>` (the stored excerpt the tests use)."""
    return lambda experiment, name: (Path(root) / experiment / name).read_text()


def _value(v: dict):
    (kind, x), = v.items()
    return int(x) if kind == "intValue" else x


def parse_spans(text: str) -> list[dict]:
    """One row per `llm_request` span of an OTLP JSON-lines export, sorted by start; arrival_s from the first."""
    spans = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        for rs in json.loads(line)["resourceSpans"]:
            for ss in rs["scopeSpans"]:
                for span in ss["spans"]:
                    if span["name"] != "llm_request":
                        continue
                    attrs = {a["key"]: _value(a["value"]) for a in span["attributes"]}
                    missing = [k for k in SPAN_FIELDS if k not in attrs]
                    if missing:
                        raise SimInputError(f"traces line {n}: span {span['spanId']} lacks {missing}")
                    spans.append({"start_ns": int(span["startTimeUnixNano"]),
                                  **{col: attrs[k] for k, col in SPAN_FIELDS.items()}})
    if not spans:
        raise SimInputError("no llm_request span in the traces")
    spans.sort(key=lambda s: s["start_ns"])
    t0 = spans[0]["start_ns"]
    return [{"index": i, "arrival_s": (s.pop("start_ns") - t0) / 1e9, **s} for i, s in enumerate(spans)]


LOG_PATTERNS = {
    "vllm_version": r"vLLM API server version (\S+)",
    "engine_args": r"non-default args: (\{.*\})$",
    "dtype": r"dtype=torch\.(\w+)",
    "enable_prefix_caching": r"enable_prefix_caching=(True|False)",
    "chunked_prefill_enabled": r"chunked_prefill_enabled=(True|False)",
    "kv_cache_tokens": r"GPU KV cache size: ([\d,]+) tokens",
    "num_gpu_blocks": r"num_gpu_blocks is: (\d+)",
    "kv_cache_memory_gib": r"Available KV cache memory: ([\d.]+) GiB",
    "weights_gib": r"Model loading took ([\d.]+) GiB",
    "attention_backend": r"Using (\w[\w ]*) backend on V1 engine",
}


def parse_log(text: str) -> dict:
    """What the log of the last server start says (a log may hold several starts: the last one served)."""
    starts = [m.start() for m in re.finditer(r"^.*vLLM API server version", text, re.M)]
    if not starts:
        raise SimInputError("vllm.log holds no server start ('vLLM API server version')")
    last = text[starts[-1]:]
    out = {}
    for key, pat in LOG_PATTERNS.items():
        m = re.search(pat, last, re.M)
        if m is None:
            raise SimInputError(f"vllm.log: the last server start states no {key} ({pat!r})")
        out[key] = m.group(1)
    args = ast.literal_eval(out.pop("engine_args"))
    out["engine_args"] = {k: v for k, v in args.items() if k in (
        "max_model_len", "max_num_batched_tokens", "max_num_seqs", "tensor_parallel_size",
        "enable_prefix_caching", "gpu_memory_utilization", "block_size")}
    out["model"] = args.get("served_model_name", [args.get("model")])[0]
    for key in ("enable_prefix_caching", "chunked_prefill_enabled"):
        out[key] = out[key] == "True"
    out["kv_cache_tokens"] = int(out["kv_cache_tokens"].replace(",", ""))
    out["num_gpu_blocks"] = int(out["num_gpu_blocks"])
    out["block_size"] = out["kv_cache_tokens"] // out["num_gpu_blocks"]
    for key in ("kv_cache_memory_gib", "weights_gib"):
        out[key] = float(out[key])
    out["gpu_stated"] = None  # no line of these logs names the GPU (see README: inferred, not stated)
    out["server_starts_in_log"] = len(starts)
    return out


def extract_experiment(read, name: str) -> tuple[dict, list[dict]]:
    exp_cfg = yaml.safe_load(read(name, "exp-config.yaml"))
    profile = yaml.safe_load(read(name, "profile.yaml"))
    log = parse_log(read(name, "vllm.log"))
    rows = parse_spans(read(name, "traces.json"))
    if exp_cfg["model"] != log["model"]:
        raise SimInputError(f"{name}: exp-config.yaml names {exp_cfg['model']}, the log serves {log['model']}")
    meta = {"name": name, "model": log["model"], "exp_config": exp_cfg,
            "workload": {k: profile[k] for k in ("rate-type", "rate", "max-requests", "random-seed")}
            | {"data": profile["data"]}, "log": log, "num_requests": len(rows),
            "source": {"repository": SOURCE_REPO, "commit": SOURCE_COMMIT, "path": f"{SOURCE_DIR}/{name}/"}}
    return meta, rows


def rows_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (r[k] if k in TOKEN_COLUMNS else f"{r[k]:.6f}") for k in COLUMNS})
    return buf.getvalue()


def extract_all(read, out_dir: Path = FACTS_DIR, names=EXPERIMENTS) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = {"source": {"repository": SOURCE_REPO, "commit": SOURCE_COMMIT, "folder": SOURCE_DIR},
                "extracted_by": "python -m experiments.sim.public_gpu extract", "experiments": []}
    for name in names:
        meta, rows = extract_experiment(read, name)
        (out_dir / f"requests-{name}.csv").write_text(rows_csv(rows))
        manifest["experiments"].append(meta)
    (out_dir / "experiments.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


def load_manifest(path: Path = MANIFEST) -> dict:
    if not path.is_file():
        raise SimInputError(f"{path} does not exist: run `python -m experiments.sim.public_gpu extract`")
    return json.loads(path.read_text())


def load_requests(name: str, facts_dir: Path = FACTS_DIR) -> list[dict]:
    path = facts_dir / f"requests-{name}.csv"
    if not path.is_file():
        raise SimInputError(f"{path} does not exist: run `python -m experiments.sim.public_gpu extract`")
    with open(path, newline="") as fh:
        return [{k: (int(v) if k in TOKEN_COLUMNS else float(v)) for k, v in r.items()} for r in csv.DictReader(fh)]
