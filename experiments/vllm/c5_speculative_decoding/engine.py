"""One vLLM engine, with or without n-gram speculation, over the c5 workloads.

Run by `experiments.vllm.engine_child`: both configurations in one child process,
each on a fresh engine; the counters are read before and after every run, so a
run counts only its own drafts. The parent compares the two. Spec-decode counters come from `llm.get_metrics()`
(needs `disable_log_stats=False`): `vllm:spec_decode_num_drafts`,
`vllm:spec_decode_num_draft_tokens`, `vllm:spec_decode_num_accepted_tokens`
(Counters) and `vllm:spec_decode_num_accepted_tokens_per_pos` (Vector).
"""
from __future__ import annotations

import time

NGRAM = {"method": "ngram", "num_speculative_tokens": 4, "prompt_lookup_max": 4, "prompt_lookup_min": 2}
# (row name, prompt set, temperature): every prompt set greedy and sampled
CASES = [("repetitive", "repetitive", 0.0), ("non_repetitive", "non_repetitive", 0.0),
         ("repetitive_t1", "repetitive", 1.0), ("non_repetitive_t1", "non_repetitive", 1.0)]


COUNTERS = ("num_drafts", "num_draft_tokens", "num_accepted_tokens", "engine_steps")


def spec_counters(llm) -> dict:
    """The spec-decode counters, and the engine's step count: `vllm:iteration_tokens_total` is observed once per
    engine step the front end receives, so its histogram count is the number of steps."""
    out = {"num_drafts": 0.0, "num_draft_tokens": 0.0, "num_accepted_tokens": 0.0, "engine_steps": 0.0,
           "accepted_per_pos": []}
    for m in llm.get_metrics():
        if m.name == "vllm:iteration_tokens_total":
            out["engine_steps"] += float(m.count)
            continue
        name = m.name.removeprefix("vllm:spec_decode_")
        if name in ("num_drafts", "num_draft_tokens", "num_accepted_tokens"):
            out[name] += float(m.value)
        elif name == "num_accepted_tokens_per_pos":
            vals = [float(v) for v in m.values]
            prev = out["accepted_per_pos"] or [0.0] * len(vals)
            out["accepted_per_pos"] = [a + b for a, b in zip(prev, vals)]
    return out


def diff(after: dict, before: dict) -> dict:
    d = {k: after[k] - before[k] for k in COUNTERS}
    bp = before["accepted_per_pos"] or [0.0] * len(after["accepted_per_pos"])
    d["accepted_per_pos"] = [a - b for a, b in zip(after["accepted_per_pos"], bp)]
    return d


def run(cfg: dict) -> dict:
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    kwargs = dict(model=cfg["model"], dtype=cfg["dtype"], enforce_eager=True, max_model_len=1024,
                  disable_log_stats=False, seed=0, max_num_seqs=cfg.get("max_num_seqs", 16))
    if cfg["speculative"]:
        kwargs["speculative_config"] = NGRAM
    t0 = time.perf_counter()
    llm = LLM(**kwargs)
    startup_s = time.perf_counter() - t0
    sp = SamplingParams(max_tokens=cfg["max_tokens"], temperature=0.0, ignore_eos=True, detokenize=False)

    def generate(prompts, params=sp):
        outs = llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts], params, use_tqdm=False)
        return [list(o.outputs[0].token_ids) for o in outs]

    generate([cfg["workloads"]["non_repetitive"][0][:16]])  # warm-up
    result = {"startup_s": startup_s, "speculative": cfg["speculative"], "runs": []}
    # greedy workloads, plus both prompt sets sampled at temperature 1 (seeded per request): a tiny greedy model
    # falls into loops that n-gram lookup predicts whatever the prompt; sampling breaks them, and shows whether
    # the model copies a continuation that is in its prompt (the copy prompts at temperature 1)
    variants = [(name, source, temp or None) for name, source, temp in cfg.get("cases", CASES)]
    if not cfg.get("sampled", True):
        variants = [v for v in variants if v[2] is None]
    for name, source, temperature in variants:
        prompts = cfg["workloads"][source]
        if temperature is None:
            def generate_fn(batch, offset):
                return generate(batch)
        else:
            def generate_fn(batch, offset, _t=temperature):
                # seed per prompt (not per batch slot), so every prompt draws its own random stream
                params = [SamplingParams(max_tokens=cfg["max_tokens"], temperature=_t, seed=1000 + offset + j,
                                         ignore_eos=True, detokenize=False) for j in range(len(batch))]
                return generate(batch, params)
        for concurrency in cfg["concurrency"]:
            for rep in range(cfg["repeats"]):
                before = spec_counters(llm)
                t = time.perf_counter()
                tokens = []
                for i in range(0, len(prompts), concurrency):
                    tokens += generate_fn(prompts[i:i + concurrency], i)
                wall = time.perf_counter() - t
                n_out = sum(len(x) for x in tokens)
                result["runs"].append({
                    "workload": name, "temperature": temperature or 0.0, "concurrency": concurrency, "repeat": rep, "wall_s": wall,
                    "output_tokens": n_out, "output_tokens_per_s": n_out / wall,
                    "spec": diff(spec_counters(llm), before), "token_ids": tokens if rep == 0 else None,
                })
                print(f"{'spec' if cfg['speculative'] else 'base'} {name} c={concurrency} r={rep}: "
                      f"{n_out / wall:.0f} tok/s", flush=True)
    return result
