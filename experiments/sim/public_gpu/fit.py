"""A GPU step-cost model fitted from the public traces alone (no step was timed on the GPU side).

What the traces give per request: `prefill_s` (its first scheduling to its first token) and `decode_s`
(first token to last). Each is a sum of whole engine steps: the steps the engine ran in that window. The
replay through the real scheduler says which steps those were and what each held, so a request's
measured time is linear in the cost model's coefficients:

    prefill_s(r) = sum over the steps of r's prefill window of (overhead_s + sum_t coef[t] * term_t(step))

with the terms of `cost_models.roofline_terms` (the roofline's pieces at the H100's datasheet peaks from
the model's shape: weights read, matmul FLOPs, attention FLOPs, KV bytes, and a per-request count).
Every window of every request of the fitted experiments gives one equation; the coefficients solve them
by least squares in relative terms (each equation divided by its measured time), none negative
(`cost_models.nonneg_lstsq`). Which steps fall into a window depends on the step times, so the fit
alternates: replay with the current model, solve, replay again (`ROUNDS` times, from the plain sum of
the roofline's terms). The frontend time (a request's arrival at the server to its arrival at the
scheduler: TTFT - queue - prefill in the traces) is their median over the fitted requests.

Fitted on FIT_EXPERIMENTS; HELD_OUT experiments are never read by the fit.
"""
from __future__ import annotations

import bisect
import json
import statistics
import tempfile
from pathlib import Path

from experiments.sim import cost_models
from experiments.sim.errors import SimInputError
from experiments.sim.public_gpu import extract, replay

# the BLIS authors' own names say which runs they trained on; the two prefill-heavy runs are held out
FIT_EXPERIMENTS = ("jan20-codellama-train-1", "jan21-llama7b-train-1")
HELD_OUT = ("jan20-codellama-prefill-1", "jan20-prefill-llama7b-tp1-1")
GPU = "h100"
# the model's form, fixed before any replay: the roofline's pieces added
TERMS = ("weights_s", "gemm_s", "attention_s", "kv_s", "num_reqs")
# tried after the held-out results were seen (so its held-out errors are not blind): the weight read and the
# matmuls overlapped (the slower of the two) instead of added
POST_HOC_TERMS = ("matmul_s", "attention_s", "kv_s", "num_reqs")
POST_HOC_MODEL_PATH = cost_models.PUBLIC_GPU_OVERLAP_MODEL_PATH
ROUNDS = 4
MIN_WINDOW_S = 1e-3  # windows shorter than this (a 1-token output's empty decode) carry no information
START_COEF = {"weights_s": 1.0, "gemm_s": 1.0, "matmul_s": 1.0, "attention_s": 1.0, "kv_s": 1.0, "num_reqs": 0.0}


def step_terms(steps: list[dict], shape, terms=TERMS) -> "np.ndarray":
    """Per step: [1 (its overhead), terms...] in `terms` order."""
    import numpy as np

    gpu = cost_models.GPUS[GPU]
    rows = (cost_models.roofline_terms(gpu, shape, s) for s in steps)
    return np.array([[1.0, *(t[k] for k in terms)] for t in rows])


def windows(out: dict, rows: list[dict], shape, terms=TERMS) -> list[tuple[str, int, "np.ndarray", float]]:
    """(kind, request index, summed step terms of the window, measured seconds) for each request's prefill
    and decode window in the replay `out` (run with record_decisions)."""
    import numpy as np

    steps = out["steps"]
    x = step_terms(steps, shape, terms)
    cum = np.vstack([np.zeros(x.shape[1]), np.cumsum(x, axis=0)])
    ends = [s["start_s"] + s["seconds"] for s in steps]
    first_sched: dict[str, int] = {}
    for k, s in enumerate(steps):
        for rid in s["scheduled"]:
            first_sched.setdefault(rid, k)
    raw = out["bench_serve"]
    got = []
    for i, r in enumerate(rows):
        rid = f"r{r['index']:04d}"
        t_first = raw["start_times"][i] + raw["ttfts"][i]
        t_last = raw["start_times"][i] + raw["latencies"][i]
        k1 = bisect.bisect_left(ends, t_first - 1e-9)
        k2 = bisect.bisect_left(ends, t_last - 1e-9)
        k0 = first_sched[rid]
        if not k0 <= k1 <= k2 < len(steps):
            raise SimInputError(f"request {rid}: its steps do not line up with its token times")
        for kind, a, b, measured in (("prefill", k0, k1, r["prefill_s"]), ("decode", k1 + 1, k2, r["decode_s"])):
            if b >= a and measured >= MIN_WINDOW_S:
                got.append((kind, i, cum[b + 1] - cum[a], measured))
    return got


def solve(eqs: list, terms=TERMS) -> dict:
    import numpy as np

    x = np.array([e[2] for e in eqs])
    y = np.array([e[3] for e in eqs])
    c = cost_models.nonneg_lstsq(x / y[:, None], np.ones(len(y)))
    if c is None:
        raise SimInputError("no non-negative fit of the windows exists")
    return {"overhead_s": float(c[0]), "coef": dict(zip(terms, (float(v) for v in c[1:])))}


def window_errors(eqs: list, model: dict) -> dict:
    """Relative error of each window's time as the model prices its steps (the steps of the last replay)."""
    import numpy as np

    w = np.array([model["overhead_s"], *model["coef"].values()])
    out = {}
    for kind in ("prefill", "decode"):
        sel = [e for e in eqs if e[0] == kind]
        if sel:
            rel = np.array([(e[2] @ w - e[3]) / e[3] for e in sel])
            out[kind] = {"n": len(sel), "median_abs_rel_error": float(np.median(np.abs(rel))),
                         "mean_rel_error": float(rel.mean())}
    return out


def model_json(model: dict, frontend_s: float, fit: dict) -> dict:
    name = f"public-gpu-{GPU}" + ("" if tuple(model["coef"]) == TERMS else "-overlap")
    return {"name": name, "gpu": GPU, "kind": "fitted on public GPU traces",
            "source": (f"{extract.SOURCE_REPO}@{extract.SOURCE_COMMIT} {extract.SOURCE_DIR}/ "
                       f"({', '.join(FIT_EXPERIMENTS)}): vLLM 0.11.0 on one 80 GB H100-class GPU, per-request "
                       "prefill and decode times; fitted by python -m experiments.sim.public_gpu fit"),
            "overhead_s": model["overhead_s"], "coef": model["coef"], "frontend": {"request_in_s": frontend_s},
            "fit": fit}


def fit(out_path: Path = cost_models.PUBLIC_GPU_MODEL_PATH, names=FIT_EXPERIMENTS, rounds: int = ROUNDS,
        terms=TERMS, cross_validation: bool = False) -> dict:
    """cross_validation: a leave-one-out fit (`crossval.py`), which may read the held-out experiments."""
    if set(names) & set(HELD_OUT) and not cross_validation:
        raise SimInputError(f"the held-out experiments {HELD_OUT} must not be fitted on")
    manifest = {m["name"]: m for m in extract.load_manifest()["experiments"]}
    reqs = [r for n in names for r in extract.load_requests(n)]
    frontend_s = statistics.median(r["ttft_s"] - r["queue_s"] - r["prefill_s"] for r in reqs)
    model, history = {"overhead_s": 0.0, "coef": {t: START_COEF[t] for t in terms}}, []
    with tempfile.TemporaryDirectory(prefix="public-gpu-fit-") as tmp:
        for k in range(rounds):
            path = Path(tmp) / f"round{k}.json"
            path.write_text(json.dumps(model_json(model, frontend_s, {})))
            done = replay.replay(names, "fitted", fit_path=path, record_decisions=True)
            eqs = []
            for name, (meta, rows, out) in done.items():
                shape = cost_models.ModelShape.from_config(replay.SHAPES[meta["model"]])
                eqs += windows(out, rows, shape, terms)
            before = window_errors(eqs, model)
            model = solve(eqs, terms)
            history.append({"round": k, "windows": len(eqs), "errors_of_previous_model": before,
                            "errors_of_new_model_same_steps": window_errors(eqs, model),
                            "overhead_s": model["overhead_s"], "coef": model["coef"]})
    held = [n for n in extract.EXPERIMENTS if n not in names] if cross_validation else list(HELD_OUT)
    fit_info = {"fitted_on": list(names), "held_out": held, "rounds": history, "terms": list(terms),
                "form": "pre-registered" if tuple(terms) == TERMS else
                        "post hoc: chosen after the held-out results were seen",
                "method": "per-request prefill and decode windows of the replay through vLLM 0.32.0's "
                          "scheduler; relative least squares, no negative coefficient; alternating with "
                          "the replay",
                "frontend_rule": "median of TTFT - queue - prefill over the fitted requests"}
    data = model_json(model, frontend_s, fit_info)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    return data
