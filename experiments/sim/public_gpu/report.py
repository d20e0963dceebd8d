"""Replay every extracted experiment with both cost models, score it in the companion repository's schema,
and render the tables of experiments/sim/public_gpu/README.md from the result files.

    flock /work/measure.lock python -m experiments.sim.public_gpu replay   # -> replay.json, errors.csv
    python -m experiments.sim.public_gpu report                            # README tables from them
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
import sys
from pathlib import Path

from experiments.common import fmt, provenance
from experiments.sim.public_gpu import extract, fit, metrics, replay

REPLAY_PATH = extract.FACTS_DIR / "replay.json"
ERRORS_PATH = extract.FACTS_DIR / "errors.csv"
PUBLISHED_PATH = extract.FACTS_DIR / "published-errors.csv"
README = Path(__file__).resolve().parent / "README.md"
KINDS = ("roofline", "fitted")
# the fitted model once more with vLLM 0.11.0's admission rule in 0.32.0's scheduler: what that difference moves
SENSITIVITY = "fitted, v0.11 admission"
# the form tried after the held-out results were seen (fit.POST_HOC_TERMS): its held-out errors are not blind
POST_HOC = "fitted post hoc"
SIMULATOR_NAMES = {"roofline": "vllm032-sched+roofline-h100", "fitted": "vllm032-sched+public-gpu-h100",
                   POST_HOC: "vllm032-sched+public-gpu-h100(post-hoc form)",
                   SENSITIVITY: "vllm032-sched(reserve_full_isl=False)+public-gpu-h100"}
ERROR_COLUMNS = ("simulator", "experiment_folder", "model", "workload", "stage_index", "metric_name",
                 "predicted", "actual", "mape", "mpe", "absolute_error", "split", "hardware",
                 "max_num_batched_tokens")


def split_of(name: str) -> str:
    return "fitted" if name in fit.FIT_EXPERIMENTS else "held-out" if name in fit.HELD_OUT else "unused"


def score(rows: list[dict], out: dict) -> dict:
    sim = replay.per_request(out)
    real_s = metrics.summary([r["ttft_s"] for r in rows], [r["e2e_s"] for r in rows],
                             [r["output_tokens"] for r in rows])
    sim_s = metrics.summary([s["ttft_s"] for s in sim], [s["e2e_s"] for s in sim],
                            [s["output_tokens"] for s in sim])
    return metrics.errors(sim_s, real_s)


def run(names=extract.EXPERIMENTS) -> dict:
    """Every experiment x cost model; one simulator process (the vLLM import) for all of them."""
    manifest = {m["name"]: m for m in extract.load_manifest()["experiments"]}
    jobs, keys = [], []
    for kind in (*KINDS, SENSITIVITY, POST_HOC):
        for name in names:
            meta = manifest[name]
            rows = extract.load_requests(name)
            spec = (replay.cost_spec("fitted", meta, fit.POST_HOC_MODEL_PATH) if kind == POST_HOC
                    else replay.cost_spec(kind.split(",")[0], meta))
            jobs.append(replay.make_job(meta, rows, spec,
                                        scheduler_args=replay.V011_ADMISSION if kind == SENSITIVITY else None))
            keys.append((kind, name, meta, rows))
    prov = provenance.provenance(argv=[sys.executable.rsplit("/", 1)[-1], "-m", "experiments.sim.public_gpu",
                                       "replay"])
    outs = replay.api.run_jobs(jobs)
    results = []
    for (kind, name, meta, rows), out in zip(keys, outs):
        results.append({"experiment": name, "cost_model": kind, "model": meta["model"], "split": split_of(name),
                        "label": out["label"], "requests": len(rows), "steps": len(out["steps"]),
                        "loop_wall_s": out["loop_wall_s"], "errors": score(rows, out),
                        "scheduler": out["scheduler"],
                        "max_num_batched_tokens": meta["log"]["engine_args"]["max_num_batched_tokens"],
                        "workload": meta["exp_config"]["app"]})
    doc = {"provenance": prov, "process_wall_s": outs[0]["process_wall_s"], "process_jobs": len(jobs),
           "loadavg_1m_after": os.getloadavg()[0], "results": results,
           "note": "simulated: vLLM 0.32.0's scheduler with a cost model in place of the GPU; the measured "
                   "values are the public runs' (vLLM 0.11.0 on one 80 GB H100-class GPU)"}
    REPLAY_PATH.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    ERRORS_PATH.write_text(errors_csv(doc))
    return doc


def errors_csv(doc: dict) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=ERROR_COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in doc["results"]:
        for m, e in r["errors"].items():
            w.writerow({"simulator": SIMULATOR_NAMES[r["cost_model"]], "experiment_folder": r["experiment"],
                        "model": r["model"], "workload": r["workload"], "stage_index": -1, "metric_name": m,
                        "predicted": f"{e['predicted']:.3f}", "actual": f"{e['actual']:.3f}",
                        "mape": f"{e['mape']:.3f}", "mpe": f"{e['mpe']:.3f}",
                        "absolute_error": f"{abs(e['predicted'] - e['actual']):.3f}", "split": r["split"],
                        "hardware": "H100 (inferred)", "max_num_batched_tokens": r["max_num_batched_tokens"]})
    return buf.getvalue()


def mean_over(results: list[dict], metric: str, key: str) -> float:
    return sum(r["errors"][metric][key] for r in results) / len(results)


def error_table(doc: dict) -> str:
    lines = ["| cost model | experiment | split | " + " | ".join(metrics.METRICS) + " |",
             "|---|---|---|" + "---:|" * len(metrics.METRICS)]
    for kind in (*KINDS, SENSITIVITY, POST_HOC):
        rs = [r for r in doc["results"] if r["cost_model"] == kind]
        for r in rs:
            cells = [f"{r['errors'][m]['mpe']:+.1f}%" for m in metrics.METRICS]
            lines.append(f"| {kind} | `{r['experiment']}` | {r['split']} | " + " | ".join(cells) + " |")
        for split in ("held-out", "fitted"):
            sel = [r for r in rs if r["split"] == split]
            if sel:
                cells = [f"**{mean_over(sel, m, 'mape'):.1f}%**" for m in metrics.METRICS]
                lines.append(f"| {kind} | MAPE, {split} ({len(sel)}) | | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def measured_table(doc: dict) -> str:
    lines = ["| experiment | model | requests | max_num_batched_tokens | " +
             " | ".join(f"{m} (ms)" for m in metrics.METRICS) + " |",
             "|---|---|---:|---:|" + "---:|" * len(metrics.METRICS)]
    for r in doc["results"]:
        if r["cost_model"] == KINDS[0]:
            cells = [f"{r['errors'][m]['actual']:.1f}" for m in metrics.METRICS]
            lines.append(f"| `{r['experiment']}` | {r['model']} | {r['requests']} | {r['max_num_batched_tokens']} | "
                         + " | ".join(cells) + " |")
    return "\n".join(lines)


def speed_line(doc: dict) -> str:
    n = sum(r["requests"] for r in doc["results"])
    loop = sum(r["loop_wall_s"] for r in doc["results"])
    steps = sum(r["steps"] for r in doc["results"])
    return (f"Speed: {n} simulated requests ({len(doc['results'])} replays, {steps} engine steps) in {loop:.1f} s "
            f"of simulator loop, **{n / loop:.0f} requests per wall second** of loop ({steps / loop:.0f} steps per "
            f"second: a run of long outputs costs more per request); {n / doc['process_wall_s']:.0f} per wall second "
            f"counting the simulator process ({doc['process_wall_s']:.1f} s, its vLLM import and scheduler set-ups "
            f"included); one run, under the measurement lock, load average after "
            f"{doc['loadavg_1m_after']:.2f} on {fmt.machine_short(doc)}.")


def fit_lines(model: dict) -> str:
    last = model["fit"]["rounds"][-1]
    coef = ", ".join(f"{k} {v:.3g}" for k, v in model["coef"].items())
    errs = last["errors_of_new_model_same_steps"]
    path = fit.cost_models.PUBLIC_GPU_MODELS[model["name"]]
    return (f"`{model['name']}` ([`{path.name}`](../../../results/reference/sim/public_gpu/{path.name}), "
            f"{model['fit']['form']}): overhead {model['overhead_s'] * 1e3:.2f} ms per step, coefficients {coef}; "
            f"frontend {model['frontend']['request_in_s'] * 1e3:.1f} ms per request. On its fitted windows "
            f"(round {last['round']}): prefill median |error| {errs['prefill']['median_abs_rel_error']:.1%} "
            f"(n={errs['prefill']['n']}), decode {errs['decode']['median_abs_rel_error']:.1%} "
            f"(n={errs['decode']['n']}).")


def committed_models() -> list[dict]:
    return [json.loads(p.read_text()) for p in fit.cost_models.PUBLIC_GPU_MODELS.values()]


def published_table(path: Path = PUBLISHED_PATH) -> str:
    if not path.is_file():
        return "(no published errors extracted)"
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    lines = ["| simulator (published) | experiments | e2e_mean MAPE | ttft_mean MAPE | itl_mean MAPE |",
             "|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['simulator']} | {r['experiments']} | {float(r['e2e_mean']):.1f}% | "
                     f"{float(r['ttft_mean']):.1f}% | {float(r['itl_mean']):.1f}% |")
    return "\n".join(lines)


E2E_GOAL, TTFT_REFERENCE = 10.0, 22.8  # the goal; BLIS-Evolved's published TTFT MAPE (its own runs)


def verdict(doc: dict) -> str:
    held = [r for r in doc["results"] if r["cost_model"] == "fitted" and r["split"] == "held-out"]
    e2e, ttft = mean_over(held, "e2e_mean", "mape"), mean_over(held, "ttft_mean", "mape")
    names = ", ".join(f"`{r['experiment']}`" for r in held)
    return (f"**Held-out ({names}), `public-gpu-h100`: E2E mean MAPE {e2e:.1f}% "
            f"({'meets' if e2e <= E2E_GOAL else 'misses'} the goal of <= {E2E_GOAL:.0f}%), TTFT mean MAPE "
            f"{ttft:.1f}% ({'below' if ttft < TTFT_REFERENCE else 'not below'} the {TTFT_REFERENCE}% reference).**")


# HBM bandwidth of the other 80 GB parts (public datasheets): a decode step reads every weight at least once
OTHER_80GB = {"A100 80GB SXM": 2.039e12, "H100 PCIe": 2.0e12}


def gpu_evidence() -> str:
    """Why H100 SXM: the fastest per-token decode any CodeLlama-34B request shows, against the time every
    weight takes to read once at the other 80 GB parts' bandwidth (a floor no step can beat)."""
    shape = fit.cost_models.ModelShape.from_config(replay.SHAPES["codellama/CodeLlama-34b-Instruct-hf"])
    weight_bytes = shape.matmul_params * shape.bytes_per_param
    metas = [m for m in extract.load_manifest()["experiments"] if m["model"] == "codellama/CodeLlama-34b-Instruct-hf"]
    best = min(r["decode_s"] / (r["output_tokens"] - 1) for m in metas
               for r in extract.load_requests(m["name"]) if r["output_tokens"] > 8)
    kv = sorted(m["log"]["kv_cache_memory_gib"] for m in metas)
    floors = ", ".join(f"{name} {weight_bytes / bw * 1e3:.1f} ms" for name, bw in OTHER_80GB.items())
    h100 = fit.cost_models.GPUS["h100"]
    return (f"GPU: no line of the logs names it; {metas[0]['log']['weights_gib']:.2f} GiB of CodeLlama-34B weights "
            f"plus {kv[0]}-{kv[-1]} GiB of KV cache at the "
            f"default 0.9 memory share make it an 80 GB part. The fastest CodeLlama-34B decode in the traces "
            f"is {best * 1e3:.1f} ms per token (a request of more than 8 output tokens), below the time its "
            f"{weight_bytes / 1e9:.1f} GB of weights take to read once on the other 80 GB parts ({floors}) and "
            f"above it on the {h100.name} ({weight_bytes / h100.peak_bytes_s * 1e3:.1f} ms): the replays use "
            f"the {h100.name}'s datasheet figures.")


# steps of the kind the patch comparisons price (Llama-3.1-8B on H100): features as the simulator computes them
EXAMPLE_SHAPE = "experiments/sim/shapes/llama-3.1-8b.json"
EXAMPLE_STEPS = {
    "decode: 64 requests at 1,000 tokens of context": {"total_tokens": 64, "attention_pairs": 64 * 1001,
                                                        "context_tokens": 64000, "num_reqs": 64},
    "mixed: a 512-token prefill chunk + 32 decodes at 2,000": {"total_tokens": 544, "num_reqs": 33,
                                                               "attention_pairs": 512 * 513 // 2 + 32 * 2001,
                                                               "context_tokens": 64000},
    "prefill: one 2,048-token chunk": {"total_tokens": 2048, "attention_pairs": 2048 * 2049 // 2,
                                       "context_tokens": 0, "num_reqs": 1},
}


def example_steps() -> str:
    specs = ("roofline-h100", "public-gpu-h100", "public-gpu-h100-overlap")
    models = [fit.cost_models.load(f"{s}:{EXAMPLE_SHAPE}") for s in specs]
    lines = ["| Llama-3.1-8B step (modelled) | " + " | ".join(f"`{s}`" for s in specs) + " |",
             "|---|" + "---:|" * len(specs)]
    for name, feats in EXAMPLE_STEPS.items():
        lines.append(f"| {name} | " + " | ".join(f"{m.step_seconds(feats) * 1e3:.1f} ms" for m in models) + " |")
    return "\n".join(lines)


def sensitivity_line(doc: dict) -> str:
    """How far vLLM 0.11's admission rule moves the fitted model's errors (percentage points)."""
    by = {(r["cost_model"], r["experiment"]): r["errors"] for r in doc["results"]}
    moved = max(abs(by[(SENSITIVITY, n)][m]["mpe"] - by[("fitted", n)][m]["mpe"])
                for (k, n) in by if k == SENSITIVITY for m in metrics.METRICS)
    return (f"vLLM 0.11's admission rule in 0.32's scheduler (`{SENSITIVITY}` rows) moves no error of the "
            f"fitted model by more than {moved:.2f} percentage points on these runs.")


# crossval.py writes here (and builds on this module, so the table is rendered here)
CROSSVAL_DIR = extract.FACTS_DIR / "crossval"
CROSSVAL_PATH = CROSSVAL_DIR / "crossval.json"


def crossval_table(doc: dict) -> str:
    lines = ["| left out (fitted on the other three) | model | " + " | ".join(metrics.METRICS) + " |",
             "|---|---|" + "---:|" * len(metrics.METRICS)]
    for r in doc["results"]:
        lines.append(f"| `{r['experiment']}` | {r['model']} | "
                     + " | ".join(f"{r['errors'][m]['mpe']:+.1f}%" for m in metrics.METRICS) + " |")
    lines.append(f"| MAPE ({len(doc['results'])}) | | " + " | ".join(
        f"**{mean_over(doc['results'], m, 'mape'):.1f}%**" for m in metrics.METRICS) + " |")
    return "\n".join(lines)


def crossval_part() -> list[str]:
    if not CROSSVAL_PATH.is_file():
        return ["(no leave-one-out run committed)"]
    return ["Leave-one-out (`crossval.py`): the pre-registered form fitted on the other three experiments, "
            "replayed on the one left out (MPE; fits in `crossval/`):",
            crossval_table(json.loads(CROSSVAL_PATH.read_text()))]


def render(doc: dict, models: list[dict]) -> str:
    return "\n\n".join([verdict(doc), gpu_evidence(),
        "Measured (the public runs, whole run per experiment):", measured_table(doc),
        "Simulated minus measured (MPE per experiment; MAPE over the experiments of a split):", error_table(doc),
        *crossval_part(), sensitivity_line(doc), *(fit_lines(m) for m in models), speed_line(doc),
        "The fitted models at the shape the patch comparisons use (Llama-3.1-8B on H100; modelled step times, "
        "no GPU ran them):", example_steps(),
        "Published by the companion repository on **its own** runs (vLLM 0.15.1 on H100, several models from "
        "Llama-2-7B to Llama-4-Scout, summary rows of `results_trainval/error_records.csv`, mean over the "
        "experiments each simulator could run; none of them the experiments above: for scale only):",
        published_table()]) + "\n"


def write_readme(readme: Path = README) -> None:
    doc = json.loads(REPLAY_PATH.read_text())
    text = readme.read_text()
    begin, end = "<!-- BEGIN GENERATED public-gpu -->", "<!-- END GENERATED public-gpu -->"
    if begin not in text or end not in text:
        raise SystemExit(f"{readme} lacks the {begin} ... {end} markers")
    body = render(doc, committed_models())
    new = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: f"{begin}\n{body}{end}", text, flags=re.S)
    readme.write_text(new)
