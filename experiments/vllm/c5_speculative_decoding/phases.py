"""c5: where a decode step's time goes with and without n-gram speculation, when drafts are rare and when they land.

    python -m experiments.vllm.c5_speculative_decoding.phases [--quick] [--render-only]

The main run found n-gram speculation *halving* throughput on sampled text where
drafts were proposed on only a few percent of steps. This run finds the time. The
EngineCore runs in-process (experiments.vllm.engine_child), so the model
runner's own methods can be wrapped with timers: input preparation, the forward
pass, sampling (the rejection sampler when drafts exist), bookkeeping, the drafter
(`propose_draft_token_ids`: the n-gram lookup), and the whole step. Each engine
config runs in a child process of its own (a fresh engine); concurrency 1, the main
run's prompts. Times are those of the engine thread (the only thread doing work
in-process, on one OpenMP thread) summed per phase, per generated token: CPU
time of that thread, which other programs on the shared cores do not inflate.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from experiments.common.plots import plt, save_figure
from experiments.common.provenance import REPO_ROOT
from experiments.common.results import read_result, write_result
from experiments.vllm.engine_child import run_jobs

LAB_DIR = Path(__file__).resolve().parent
REPO = REPO_ROOT
RESULT_NAME = "phases_cpu.json"
BENCHMARK_VERSION = 1
BEGIN = "<!-- BEGIN GENERATED PHASES: (python -m experiments.vllm.c5_speculative_decoding.phases --render-only) -->"
END = "<!-- END GENERATED PHASES -->"
# model-runner methods timed, in the order a step calls them (GPUModelRunner; the CPU runner inherits them)
PHASES = ["_update_states", "_prepare_inputs", "_model_forward", "_sample", "_bookkeeping_sync",
          "propose_draft_token_ids"]
TOTALS = ["execute_model", "sample_tokens"]
# (workload, source prompts, temperature)
CASES = [("repetitive", "repetitive", 0.0), ("non_repetitive_t1", "non_repetitive", 1.0)]


def install_timers(totals: dict) -> None:
    """Wrap the model runner's methods so each call adds its wall time and a count to `totals`."""
    from vllm.v1.worker.gpu_model_runner import GPUModelRunner

    for name in PHASES + TOTALS:
        orig = getattr(GPUModelRunner, name)

        def timed(self, *args, _orig=orig, _name=name, **kwargs):
            t, c = time.perf_counter(), time.thread_time()
            try:
                return _orig(self, *args, **kwargs)
            finally:
                slot = totals.setdefault(_name, [0.0, 0, 0.0])
                slot[0] += time.perf_counter() - t
                slot[1] += 1
                slot[2] += time.thread_time() - c

        setattr(GPUModelRunner, name, timed)


def run(cfg: dict) -> dict:
    """One engine config, run by experiments.vllm.engine_child in-process (the model runner is in this process)."""
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    from experiments.vllm.c5_speculative_decoding.engine import NGRAM

    totals: dict = {}
    install_timers(totals)
    kwargs = dict(model=cfg["model"], dtype=cfg["dtype"], enforce_eager=True, max_model_len=1024,
                  disable_log_stats=False, seed=0, max_num_seqs=16)
    if cfg["speculative"]:
        kwargs["speculative_config"] = NGRAM
    llm = LLM(**kwargs)
    # Warm-up: one whole request of every case first (prompt lengths, decode shapes, the sampler path of each
    # temperature), so one-time set-up costs land in no case's figures.
    for _name, source, temperature in CASES:
        llm.generate([TokensPrompt(prompt_token_ids=cfg["workloads"][source][0])],
                     SamplingParams(max_tokens=cfg["max_tokens"], temperature=temperature, seed=999,
                                    ignore_eos=True, detokenize=False), use_tqdm=False)
    out = {"speculative": cfg["speculative"], "cases": {}}
    for name, source, temperature in CASES:
        totals.clear()
        tokens, t, c = 0, time.perf_counter(), time.thread_time()
        for i, prompt in enumerate(cfg["workloads"][source]):  # concurrency 1: one request at a time
            sp = SamplingParams(max_tokens=cfg["max_tokens"], temperature=temperature, seed=1000 + i,
                                ignore_eos=True, detokenize=False)
            res = llm.generate([TokensPrompt(prompt_token_ids=prompt)], sp, use_tqdm=False)
            tokens += len(res[0].outputs[0].token_ids)
        wall, cpu = time.perf_counter() - t, time.thread_time() - c
        out["cases"][name] = {"temperature": temperature, "wall_s": wall, "cpu_s": cpu, "output_tokens": tokens,
                              "phases": {k: {"s": v[0], "calls": v[1], "cpu_s": v[2]} for k, v in totals.items()}}
        print(f"{'spec' if cfg['speculative'] else 'base'} {name}: {tokens / wall:.0f} tok/s, "
              f"steps {totals.get('execute_model', [0, 0])[1]}", flush=True)
    return out


def measure(quick: bool) -> dict:
    from experiments.vllm.c5_speculative_decoding.spec_decoding import MODEL_DIR
    from experiments.vllm.c5_speculative_decoding.workloads import build_workloads

    n_prompts, max_tokens = (2, 32) if quick else (8, 128)
    workloads = build_workloads(MODEL_DIR / "tokenizer.json", n_prompts)
    workloads.pop("_files")
    runs = {}
    env = {"VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")}
    for spec in (False, True):  # a fresh child per config: timers and counters start clean
        cfg = {"model": str(MODEL_DIR), "dtype": "float32", "max_tokens": max_tokens, "workloads": workloads,
               "speculative": spec}
        out = run_jobs([("experiments.vllm.c5_speculative_decoding.phases", cfg, env)])[0]
        runs["ngram" if spec else "no_spec"] = out["cases"]
    return {"n_prompts": n_prompts, "max_tokens": max_tokens, "concurrency": 1, "runs": runs}


def per_token_us(case: dict, key: str = "cpu_s") -> dict:
    """Microseconds per generated token for each phase (engine-thread CPU time by default, key="s" for wall),
    plus 'other in step' = step time outside the timed phases and 'outside steps' = the rest of the run
    (engine loop, scheduler, output processing)."""
    n, ph = case["output_tokens"], case["phases"]
    get = lambda k: ph.get(k, {key: 0.0})[key]  # noqa: E731
    out = {k: get(k) / n * 1e6 for k in PHASES}
    steps = get("execute_model") + get("sample_tokens")
    out["other in step"] = (steps - sum(get(k) for k in PHASES)) / n * 1e6
    out["outside steps"] = (case["cpu_s" if key == "cpu_s" else "wall_s"] - steps) / n * 1e6
    return out


def rows(doc: dict) -> list[dict]:
    out = []
    for case in [c[0] for c in CASES]:
        for variant, cases in doc["results"]["runs"].items():
            c = cases[case]
            out.append({"case": case, "variant": variant, "tok_s": c["output_tokens"] / c["wall_s"],
                        "tok_per_cpu_s": c["output_tokens"] / c["cpu_s"],
                        "steps": c["phases"].get("execute_model", {"calls": 0})["calls"],
                        "tokens": c["output_tokens"], "us": per_token_us(c)})
    return out


def plot(doc: dict, path: Path, source: str) -> None:
    rs = rows(doc)
    labels = [f"{r['case']}\n{r['variant']}" for r in rs]
    keys = list(rs[0]["us"])
    fig, ax = plt.subplots(figsize=(10, 3.8))
    left = [0.0] * len(rs)
    for i, k in enumerate(keys):
        vals = [r["us"][k] for r in rs]
        ax.barh(labels, vals, left=left, label=k.lstrip("_"), color=f"C{i}")
        left = [a + b for a, b in zip(left, vals)]
    ax.set_xlabel("µs of engine-thread CPU time per generated token (concurrency 1, one OpenMP thread)")
    ax.invert_yaxis()
    ax.legend(fontsize=7, ncol=4, loc="lower right")
    ax.set_title("c5: where a token's time goes, with and without n-gram speculation", fontsize=10)
    save_figure(fig, path, source=source)


def block(doc: dict, rel: str) -> str:
    res, prov = doc["results"], doc["provenance"]
    m = prov["machine"]
    rs = rows(doc)
    keys = list(rs[0]["us"])
    lines = ["![where the time goes](plots/phases.png)", "",
             f"Concurrency 1, {res['n_prompts']} prompts x {res['max_tokens']} tokens, one pass, in-process "
             f"EngineCore on one OpenMP thread, timers on the model runner's methods: µs of engine-thread CPU "
             f"time per generated token (wall times are in the JSON). "
             f"Machine: {m['cpu_model']}, {m['cpu_count']} cores, shared (1-min load {m['loadavg_1m']:.1f} at the "
             f"start); vLLM-cpu {prov['versions'].get('vllm-cpu')}. Data: `{rel}`.", "",
             "| workload | engine | tokens per CPU-second | steps | " + " | ".join(k.lstrip("_") for k in keys) + " |",
             "|---|---|---|---|" + "---|" * len(keys)]
    for r in rs:
        lines.append(f"| {r['case']} | {r['variant']} | {r['tok_per_cpu_s']:.0f} | {r['steps']} | "
                     + " | ".join(f"{r['us'][k]:.0f}" for k in keys) + " |")
    return "\n".join(lines)


def render_readme(doc: dict, readme: Path, rel: str) -> None:
    text = readme.read_text()
    a, b = text.index(BEGIN), text.index(END) + len(END)
    readme.write_text(text[:a] + BEGIN + "\n" + block(doc, rel) + "\n" + END + text[b:])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2 prompts x 32 tokens; writes under build/")
    ap.add_argument("--render-only", action="store_true", help="redraw the plot and README block from the JSON")
    args = ap.parse_args(argv)
    out_dir = REPO / "build" / "c5_quick" if args.quick else LAB_DIR
    path = out_dir / "results" / RESULT_NAME
    if not args.render_only:
        write_result(path, measure(args.quick), benchmark_version=BENCHMARK_VERSION,
                     config={"quick": args.quick, "cases": CASES, "phases": PHASES, "totals": TOTALS},
                     extra_packages=["vllm-cpu"])
    doc = read_result(path)
    rel = str(path.relative_to(REPO))
    plot(doc, out_dir / "plots" / "phases.png", rel)
    if not args.quick and BEGIN in (LAB_DIR / "README.md").read_text():
        render_readme(doc, LAB_DIR / "README.md", rel)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
