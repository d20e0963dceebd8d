"""Step cost models: how long one engine step takes, from what the scheduler put in it.

A step is described by `step_features` (computed from the SchedulerOutput and the
requests' progress before the step):
    prefill_tokens   prompt tokens computed this step (all chunks)
    decode_seqs      requests generating a token this step
    context_tokens   tokens already in the KV cache that the scheduled requests attend over
    attention_pairs  (query, key) pairs of attention this step (for the roofline)
    num_reqs, total_tokens

Three kinds, each with a label that goes into every result:
  * `LinearStepCost` *calibrated*: seconds = overhead + a*prefill_tokens + b*decode_seqs
    + c*context_tokens (the served model: its own features, `served_fit.SERVED_FEATURES`), non-negative
    least squares on real per-step timings (CPU engine:
    `experiments.sim.calibrate`; a GPU: `from_csv` on rows of
    (prefill_tokens, decode_seqs, context_tokens, seconds), e.g. `make gpu-evidence` output);
    held-out error recorded with the fit.
  * `RooflineCost` *modeled*: max(FLOPs / peak FLOP/s, bytes / peak bandwidth) per step
    from public specs and the model's shape. A lower bound, never a measurement.
  * `FittedRooflineCost` *fitted on public GPU traces*: the roofline's pieces (`roofline_terms`) weighed
    by coefficients fitted on public vLLM-on-H100 runs (`experiments.sim.public_gpu`), at any shape.
"""
from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from experiments.sim.errors import SimInputError
from tools.pins import REPO_ROOT

FEATURES = ("prefill_tokens", "decode_seqs", "context_tokens")
CALIBRATION_DIR = REPO_ROOT / "results" / "reference" / "sim" / "calibration"
CPU_MODEL_PATH = CALIBRATION_DIR / "cost_model.json"
CPU_SERVED_MODEL_PATH = CALIBRATION_DIR / "cost_model_served.json"


def step_features(num_scheduled: dict[str, int], computed_before: dict[str, int],
                  prompt_lens: dict[str, int], shared_context: int = 0) -> dict:
    """What one step computes, from the scheduler's decision and each request's progress before it.

    prefill_tokens counts every token computed beyond one per decoding sequence: prompt tokens and, with
    speculative decoding, the draft tokens a step verifies (`draft_tokens`, also given alone): the forward
    pass does the same work for each query token, so a model fitted without speculative decoding prices a
    verified draft as a prompt token.
    unique_context_tokens: the context with every KV block that several of the step's requests attend
    (prefix-cache hits share blocks) counted once; `shared_context` is how many tokens fewer that is
    (`shared_context_tokens`); those keys likely stay in the CPU's caches across the batch."""
    prefill = decode = context = pairs = drafts = 0
    for rid, n in num_scheduled.items():
        done, plen = computed_before[rid], prompt_lens[rid]
        p = max(0, min(n, plen - done))
        prefill += p
        decode += (n - p) > 0
        drafts += max(0, n - p - 1)
        context += done
        pairs += n * done + n * (n + 1) // 2  # causal: query i sees everything before it and itself
    feats = {"prefill_tokens": prefill + drafts, "decode_seqs": decode, "context_tokens": context,
             "attention_pairs": pairs, "num_reqs": len(num_scheduled),
             "total_tokens": sum(num_scheduled.values()), "draft_tokens": drafts,
             "unique_context_tokens": context - shared_context}
    return feats


def shared_context_tokens(scheduler, num_scheduled: dict[str, int], computed_before: dict[str, int]) -> int:
    """Context tokens a step's requests attend more than once: each full KV block of computed context that
    k > 1 of them hold (a prefix-cache hit maps the same block into every request with that prefix) counts
    (k - 1) blocks of tokens. From the scheduler's block tables right after schedule()."""
    from collections import Counter

    bs, mgr = scheduler.block_size, scheduler.kv_cache_manager
    refs: Counter = Counter()
    for rid in num_scheduled:
        full = computed_before[rid] // bs
        if full:
            refs.update(mgr.get_block_ids(rid)[0][:full])
    return bs * sum(k - 1 for k in refs.values())


def scheduled_features(scheduler, num_scheduled: dict[str, int]) -> dict:
    """`step_features` of the step `scheduler` has just scheduled (right after schedule(): each request's
    computed tokens already include this step's), block sharing included: one reading for the simulator's
    driver and both step hooks."""
    reqs = {rid: scheduler.requests[rid] for rid in num_scheduled}
    before = {rid: r.num_computed_tokens - num_scheduled[rid] for rid, r in reqs.items()}
    return step_features(num_scheduled, before, {rid: r.num_prompt_tokens for rid, r in reqs.items()},
                         shared_context_tokens(scheduler, num_scheduled, before))


# Features the driver supplies from its virtual clock rather than from the scheduler's decision:
#   arrivals  requests that reach the scheduler while the step runs (start to the next step's start);
#             in a real server each is handled on the same cores (client send, API server, tokenising,
#             EngineCore input) and slows the step. Derived from the log by `served_fit.read_events`.
CLOCK_FEATURES = ("arrivals",)


# every feature a LinearStepCost may carry a coefficient for
STEP_FEATURES = (*step_features({}, {}, {}), *CLOCK_FEATURES)


def nonneg_lstsq(x, y):
    """Least squares with no negative coefficient: the best fit over every subset of x's columns but the
    first (always kept) whose unconstrained solution is all >= 0 (n columns: 2^(n-1) fits). None if none is."""
    from itertools import combinations

    import numpy as np

    n = x.shape[1] - 1
    best = None
    for k in range(n + 1):
        for subset in combinations(range(1, n + 1), k):
            cols = [0, *subset]
            c, *_ = np.linalg.lstsq(x[:, cols], y, rcond=None)
            if (c < 0).any():
                continue
            sse = float(((x[:, cols] @ c - y) ** 2).sum())
            if best is None or sse < best[0]:
                full = np.zeros(n + 1)
                full[cols] = c
                best = (sse, full)
    return None if best is None else best[1]


def _lstsq(rows: list[dict], ys: list[float], features=FEATURES) -> list[float]:
    """Least squares with no negative coefficient (no step gets cheaper with more work), with an intercept:
    `nonneg_lstsq` (3 features: 8 fits)."""
    import numpy as np

    x = np.array([[1.0, *(r[f] for f in features)] for r in rows], dtype=float)
    best = nonneg_lstsq(x, np.array(ys, dtype=float))
    if best is None:
        raise SimInputError("no non-negative linear fit exists for these step timings")
    return [float(c) for c in best]


def relative_errors(predicted: list[float], actual: list[float]) -> dict:
    import numpy as np

    rel = np.abs(np.array(predicted) - np.array(actual)) / np.array(actual)
    return {"n": int(len(rel)), "median_abs_rel_error": float(np.median(rel)),
            "p90_abs_rel_error": float(np.percentile(rel, 90)), "mean_abs_rel_error": float(rel.mean()),
            "sum_rel_error": float((sum(predicted) - sum(actual)) / sum(actual))}


def linear_seconds(overhead_s: float, coef: dict, values: dict) -> float:
    """overhead + sum(coef[k] * values[k]): the form both fitted cost models price a step with (over the
    step's features, or over the roofline's terms)."""
    return overhead_s + sum(c * values[k] for k, c in coef.items())


@dataclass
class LinearStepCost:
    """seconds = overhead_s + sum(coef[f] * feature f) over the features in `coef`: fitted on real steps."""
    name: str
    overhead_s: float
    coef: dict
    kind: str = "calibrated"
    source: str = ""
    fit: dict | None = None
    # time outside the engine that a served request pays (fitted from `vllm serve` runs, else none):
    # request_in_s per request through the API server (one at a time), token_out_s per token back
    frontend: dict | None = None

    @property
    def label(self) -> str:
        return f"simulated (cost model {self.name}, {self.kind})"

    def step_seconds(self, feats: dict) -> float:
        return max(0.0, linear_seconds(self.overhead_s, self.coef, feats))

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def fit_steps(cls, name: str, rows: list[dict], seconds: list[float], source: str,
                  holdout_every: int = 5, features=FEATURES) -> "LinearStepCost":
        """Fit on all steps but every `holdout_every`-th, report the error on those held out."""
        if len(rows) != len(seconds) or len(rows) < 2 * holdout_every:
            raise SimInputError(f"need at least {2 * holdout_every} timed steps to fit {name}, got {len(rows)}")
        train = [i for i in range(len(rows)) if i % holdout_every]
        held = [i for i in range(len(rows)) if not i % holdout_every]
        coef = _lstsq([rows[i] for i in train], [seconds[i] for i in train], features)
        model = cls(name=name, overhead_s=coef[0], coef=dict(zip(features, coef[1:])), source=source)
        pred = [model.step_seconds(r) for r in rows]
        model.fit = {"train": relative_errors([pred[i] for i in train], [seconds[i] for i in train]),
                     "held_out": relative_errors([pred[i] for i in held], [seconds[i] for i in held]),
                     "holdout_rule": f"every {holdout_every}th step (index % {holdout_every} == 0)"}
        return model

    @classmethod
    def from_csv(cls, path: Path, name: str | None = None) -> "LinearStepCost":
        """GPU hook: rows of prefill_tokens, decode_seqs, context_tokens, seconds (header required)."""
        path = Path(path)
        if not path.is_file():
            raise SimInputError(f"GPU timing CSV {path} does not exist")
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            need = [*FEATURES, "seconds"]
            missing = [c for c in need if c not in (reader.fieldnames or [])]
            if missing:
                raise SimInputError(f"{path}: missing column(s) {missing}; need {need}")
            data = [{k: float(r[k]) for k in need} for r in reader]
        rows = [{f: d[f] for f in FEATURES} for d in data]
        return cls.fit_steps(name or f"gpu-csv:{path.name}", rows, [d["seconds"] for d in data], source=str(path))


@dataclass(frozen=True)
class GpuSpec:
    name: str
    peak_flops: float       # dense bf16 FLOP/s
    peak_bytes_s: float     # HBM bytes/s
    source: str


# Public datasheet figures (NVIDIA H100 / H200 SXM product pages): dense bf16 tensor-core peak and HBM bandwidth.
GPUS = {
    "h100": GpuSpec("H100 SXM", 989e12, 3.35e12, "NVIDIA H100 SXM datasheet: 989 TFLOP/s dense BF16, 3.35 TB/s"),
    "h200": GpuSpec("H200 SXM", 989e12, 4.8e12, "NVIDIA H200 SXM datasheet: 989 TFLOP/s dense BF16, 4.8 TB/s"),
}


@dataclass
class ModelShape:
    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    bytes_per_param: int = 2  # bf16 on a GPU

    @classmethod
    def from_config(cls, model: str | Path) -> "ModelShape":
        """From a model directory's config.json or a config-shaped JSON file (experiments/sim/shapes/)."""
        path = Path(model) if str(model).endswith(".json") else Path(model) / "config.json"
        if not path.is_file():
            raise SimInputError(f"unknown model shape {str(model)!r}: no {path}")
        c = json.loads(path.read_text())
        heads = c["num_attention_heads"]
        return cls(layers=c["num_hidden_layers"], hidden=c["hidden_size"], intermediate=c["intermediate_size"],
                   heads=heads, kv_heads=c.get("num_key_value_heads", heads),
                   head_dim=c.get("head_dim") or c["hidden_size"] // heads, vocab=c["vocab_size"])

    @property
    def matmul_params(self) -> int:
        """Weights every token multiplies through (attention projections, MLP, LM head)."""
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        per_layer = self.hidden * q + 2 * self.hidden * kv + q * self.hidden + 3 * self.hidden * self.intermediate
        return self.layers * per_layer + self.hidden * self.vocab

    @property
    def kv_bytes_per_token(self) -> int:
        return 2 * self.layers * self.kv_heads * self.head_dim * self.bytes_per_param


@dataclass
class RooflineCost:
    """Modeled GPU step time: the slower of compute and memory traffic at peak. A lower bound."""
    gpu: GpuSpec
    shape: ModelShape
    model: str
    kind: str = "modeled"

    @property
    def name(self) -> str:
        return f"roofline-{self.gpu.name.split()[0].lower()} ({self.model} shape)"

    @property
    def label(self) -> str:
        return f"simulated (cost model {self.name}, modeled from public specs, not measured)"

    def step_seconds(self, feats: dict) -> float:
        s = self.shape
        tokens = feats["total_tokens"]
        flops = 2 * s.matmul_params * tokens + 4 * s.layers * s.heads * s.head_dim * feats["attention_pairs"]
        bytes_ = (s.matmul_params * s.bytes_per_param
                  + s.kv_bytes_per_token * (feats["context_tokens"] + 2 * tokens))  # read old KV, write+read new
        return max(flops / self.gpu.peak_flops, bytes_ / self.gpu.peak_bytes_s)

    def to_json(self) -> dict:
        return {"name": self.name, "kind": self.kind, "gpu": asdict(self.gpu), "shape": asdict(self.shape),
                "model": self.model, "note": "max(FLOPs/peak, bytes/bandwidth) per step; no launch, "
                                             "scheduling or kernel-efficiency overhead: a lower bound"}


# Terms of a step's time at a GPU's datasheet peaks (seconds), from the model's shape and the step's features:
# the roofline's pieces kept apart, so a fit can weigh each (`FittedRooflineCost`).
ROOFLINE_TERMS = ("weights_s", "gemm_s", "attention_s", "kv_s", "num_reqs", "matmul_s")


def roofline_terms(gpu: GpuSpec, shape: ModelShape, feats: dict) -> dict:
    """weights_s: reading every weight once; gemm_s: the matmuls of every scheduled token; attention_s: the
    (query, key) pairs; kv_s: reading the attended KV and writing the new; num_reqs: requests in the step
    (a per-request cost: input preparation, sampling), a count, not seconds; matmul_s: the slower of the
    weight read and the matmuls (they overlap on a GPU: a small step reads weights, a large one computes)."""
    s, tokens = shape, feats["total_tokens"]
    weights_s = s.matmul_params * s.bytes_per_param / gpu.peak_bytes_s
    gemm_s = 2 * s.matmul_params * tokens / gpu.peak_flops
    return {"weights_s": weights_s, "gemm_s": gemm_s,
            "attention_s": 4 * s.layers * s.heads * s.head_dim * feats["attention_pairs"] / gpu.peak_flops,
            "kv_s": s.kv_bytes_per_token * (feats["context_tokens"] + 2 * tokens) / gpu.peak_bytes_s,
            "num_reqs": feats["num_reqs"], "matmul_s": max(weights_s, gemm_s)}


PUBLIC_GPU_MODEL_PATH = REPO_ROOT / "results" / "reference" / "sim" / "public_gpu" / "cost_model.json"
# the same fit with the weight read and the matmuls overlapped: a form tried after the held-out results were seen
PUBLIC_GPU_OVERLAP_MODEL_PATH = PUBLIC_GPU_MODEL_PATH.with_name("cost_model_post_hoc.json")
PUBLIC_GPU_MODELS = {"public-gpu-h100": PUBLIC_GPU_MODEL_PATH, "public-gpu-h100-overlap": PUBLIC_GPU_OVERLAP_MODEL_PATH}


@dataclass
class FittedRooflineCost:
    """seconds = overhead_s + sum(coef[t] * roofline term t): the roofline's pieces weighed by a fit on real
    GPU runs (`experiments.sim.public_gpu.fit`), so the model's shape still scales each piece. Fitted for
    one GPU; `frontend` as in LinearStepCost (the server's time between a request's arrival and the
    scheduler)."""
    name: str
    gpu: GpuSpec
    shape: ModelShape
    model: str
    overhead_s: float
    coef: dict
    kind: str = "fitted on public GPU traces"
    source: str = ""
    fit: dict | None = None
    frontend: dict | None = None

    @property
    def label(self) -> str:
        return f"simulated (cost model {self.name} ({self.model} shape), {self.kind})"

    def step_seconds(self, feats: dict) -> float:
        return linear_seconds(self.overhead_s, self.coef, roofline_terms(self.gpu, self.shape, feats))

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_file(cls, path: Path, shape: str | Path, spec: str) -> "FittedRooflineCost":
        if not path.is_file():
            raise SimInputError(f"cost model {spec!r} is not fitted: {path} does not exist "
                                "(run `python -m experiments.sim.public_gpu fit`)")
        data = json.loads(path.read_text())
        unknown = sorted(set(data.get("coef", {})) - set(ROOFLINE_TERMS))
        if unknown or "overhead_s" not in data or data.get("gpu") not in GPUS:
            raise SimInputError(f"cost model {spec!r} in {path} is not a fitted roofline: coefficients for "
                                f"{ROOFLINE_TERMS}, overhead_s and a known gpu ({sorted(GPUS)}) needed")
        return cls(name=data["name"], gpu=GPUS[data["gpu"]], shape=ModelShape.from_config(shape),
                   model=Path(shape).stem, overhead_s=data["overhead_s"], coef=data["coef"],
                   source=data.get("source", ""), fit=data.get("fit"), frontend=data.get("frontend"))


@dataclass
class ConstantStepCost:
    """Every step takes the same time: for replaying decisions step by step, where time does not matter."""
    seconds: float = 1e-3
    name: str = "constant-step"
    kind: str = "decision replay"

    @property
    def label(self) -> str:
        return f"simulated (cost model {self.name}: times not meaningful, decisions only)"

    def step_seconds(self, feats: dict) -> float:
        return self.seconds

    def to_json(self) -> dict:
        return asdict(self)


def load(spec: str, model: str | None = None):
    """A cost model by name: `cpu` (calibrated here), `roofline-h100|h200` (shape of `model`, or of
    the config-shaped JSON after a colon: `roofline-h100:experiments/sim/shapes/llama-3.1-8b.json`),
    `cpu-served` (fitted on `vllm serve` runs, with the frontend they paid),
    `public-gpu-h100[:shape]` (fitted on public H100 vLLM traces: `experiments.sim.public_gpu`; shape as for
    the roofline; `public-gpu-h100-overlap`: the same fit with weight read and matmuls overlapped, a form
    chosen after its held-out runs were seen), `gpu-fit:<fit>.json[:shape]` (any saved FittedRooflineCost),
    `gpu-csv:<path>` (fitted from a GPU timing CSV), a path to a saved LinearStepCost JSON, or
    `constant-step` (decision replay only)."""
    if spec == "cpu":
        return load_linear(CPU_MODEL_PATH, "cpu")
    if spec == "cpu-served":
        return load_linear(CPU_SERVED_MODEL_PATH, "cpu-served", "python -m experiments.sim served-fit")
    if spec == "constant-step":
        return ConstantStepCost()
    if spec.startswith("roofline-"):
        gpu, _, shape = spec.removeprefix("roofline-").partition(":")
        if gpu not in GPUS:
            raise SimInputError(f"unknown GPU {gpu!r} for the roofline; known: {sorted(GPUS)}")
        shape = shape or model
        if shape is None:
            raise SimInputError("the roofline cost model needs the model directory (its shape)")
        return RooflineCost(GPUS[gpu], ModelShape.from_config(shape), model=Path(shape).stem)
    if spec.partition(":")[0] in PUBLIC_GPU_MODELS or spec.startswith("gpu-fit:"):
        # public-gpu-h100[-overlap][:shape]: the committed fits; gpu-fit:<fit>.json[:shape]: any saved one
        if spec.startswith("gpu-fit:"):
            path, _, shape = spec.removeprefix("gpu-fit:").partition(":")
            path = Path(path)
        else:
            name, _, shape = spec.partition(":")
            path = PUBLIC_GPU_MODELS[name]
        shape = shape or model
        if shape is None:
            raise SimInputError(f"cost model {spec!r} needs the model directory or a shape file (its shape)")
        return FittedRooflineCost.from_file(path, shape, spec)
    if spec.startswith("gpu-csv:"):
        return LinearStepCost.from_csv(Path(spec.removeprefix("gpu-csv:")))
    if spec.endswith(".json"):
        return load_linear(Path(spec), spec)
    raise SimInputError(f"unknown cost model {spec!r}; known: cpu, cpu-served, roofline-h100, roofline-h200, "
                        "public-gpu-h100[-overlap][:<shape>], gpu-fit:<fit>.json[:<shape>], "
                        "gpu-csv:<path>, <fitted model>.json, constant-step")


def load_linear(path: Path, spec: str, how: str = "python -m experiments.sim calibrate") -> LinearStepCost:
    if not path.is_file():
        raise SimInputError(f"cost model {spec!r} is not calibrated: {path} does not exist "
                            f"(run `{how}` to record real steps and fit it)")
    data = json.loads(path.read_text())
    missing = [k for k in ("name", "overhead_s") if k not in data] + ([] if data.get("coef") else ["coef"])
    if missing:
        raise SimInputError(f"cost model {spec!r} in {path} is not a fitted model: missing {missing} (run `{how}`)")
    unknown = sorted(set(data["coef"]) - set(STEP_FEATURES))
    if unknown:
        raise SimInputError(f"cost model {spec!r} in {path} has coefficients for unknown step features {unknown}; "
                            f"known: {list(STEP_FEATURES)}")
    return LinearStepCost(**data)
