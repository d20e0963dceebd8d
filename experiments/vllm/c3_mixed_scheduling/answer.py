"""The README's answer, written from the result JSON: every number below is read, none typed.

The wording that depends on a comparison ("lower", "higher", "about the same") is
chosen from the numbers too: two configs differ only when their ranges over the
clean passes do not overlap.
"""
from __future__ import annotations

OFF, ON, SMALL = "chunked-off-2048", "chunked-on-2048", "chunked-on-512"


def compare(a: dict, b: dict, lower: str = "lower", higher: str = "higher", same: str = "within the repeat spread") -> str:
    """a vs b (each {"median", "min", "max"}): differ only when the repeat ranges do not overlap."""
    if a["max"] < b["min"]:
        return lower
    if a["min"] > b["max"]:
        return higher
    return same


def answer_lines(doc: dict) -> list[str]:
    res = doc["results"]
    cfgs = res["configs"]
    if not all(k in cfgs for k in (OFF, ON, SMALL)):
        return ["The answer needs the three configs of the full run (`python -m experiments.vllm.c3_mixed_scheduling`)."]
    A = {k: c["across_repeats"] for k, c in cfgs.items()}

    def v(cfg: str, key: str, digits: int = 0) -> str:
        return f"{A[cfg][key]['median']:,.{digits}f}"

    def pct(cfg: str, key: str) -> str:
        return f"{100 * A[cfg][key]['median']:.0f}%"

    n_short = sum(r["kind"] == "short" for r in res["workload"]["requests"])
    n_long = len(res["workload"]["requests"]) - n_short
    fit = cfgs[OFF]["step_cost"]
    long_len = min(r["prompt_len"] for r in res["workload"]["requests"] if r["kind"] == "long")
    short_len = min(r["prompt_len"] for r in res["workload"]["requests"] if r["kind"] == "short")
    ttft_small = compare(A[SMALL]["short_ttft.p90_ms"], A[OFF]["short_ttft.p90_ms"])
    itl_small = compare(A[SMALL]["short_itl_in_long_prefill_steps.p50_ms"], A[OFF]["short_itl_in_long_prefill_steps.p50_ms"])
    ratio = A[OFF]["short_ttft_behind_long_prefill.p50_ms"]["median"] / A[OFF]["short_ttft_clear.p50_ms"]["median"]
    step_ratio = A[OFF]["long_prefill_step_ms.p50_ms"]["median"] / A[OFF]["pure_decode_step_ms_median"]["median"]
    L = []
    L.append(
        f"**1. Short requests wait behind long prompts (head-of-line blocking of TTFT).** With chunked prefill off, a "
        f"short request whose wait overlapped no long prefill got its first token in {v(OFF, 'short_ttft_clear.p50_ms')} ms "
        f"(median). The {v(OFF, 'shorts_behind_long_prefill')} of {n_short} short requests that arrived while a long "
        f"prompt was being prefilled waited {v(OFF, 'short_ttft_behind_long_prefill.p50_ms')} ms "
        f"(max {v(OFF, 'short_ttft_behind_long_prefill.max_ms')} ms), {ratio:.0f}x as long: their TTFT was set by the "
        f"~{long_len}-token prompt ahead of them, not by their own ~{short_len} tokens. Those few make the tail: short TTFT p50 "
        f"{v(OFF, 'short_ttft.p50_ms')} ms, p90 {v(OFF, 'short_ttft.p90_ms')} ms, max {v(OFF, 'short_ttft.max_ms')} ms. "
        f"Only {v(OFF, 'steps_with_long_prefill')} of ~{v(OFF, 'steps')} steps carried a long prefill, yet "
        f"{pct(OFF, 'short_ttft_share_in_long_prefill_steps')} of all the time short requests spent waiting for a first "
        f"token was spent inside those steps. The timeline shows it: orange bars (arrival to first token) are short "
        f"except where they cross a red step.")
    L.append("")
    L.append(
        f"**2. Requests already streaming stall (inter-token latency spikes).** A step lasts as long as its tokens take "
        f"(fit over the clean steps: {fit['intercept_ms']:.1f} ms + {fit['ms_per_token'] * 1e3:.0f} us per token), and "
        f"prefill and decode share the step. A step that carried a long prompt's prefill took "
        f"{v(OFF, 'long_prefill_step_ms.p50_ms')} ms against {v(OFF, 'pure_decode_step_ms_median', 1)} ms for a pure "
        f"decode step ({step_ratio:.0f}x), so every short request decoding in it waited that long for its next token: "
        f"short-request ITL p50 {v(OFF, 'short_itl_in_long_prefill_steps.p50_ms')} ms in those steps vs "
        f"{v(OFF, 'short_itl_in_other_steps.p50_ms', 1)} ms in all others; {v(OFF, 'itl_spikes_in_long_prefill_steps')} "
        f"of the {v(OFF, 'itl_spikes')} gaps above {doc['config']['spike_factor']:.0f}x the usual gap came from a "
        f"long-prefill step. On average each short request lost {v(OFF, 'short_decode_time_lost_to_long_prefill_ms')} ms "
        f"of its {A[OFF]['short_gaps']['median'] / n_short:.0f} decode gaps to other requests' prefills.")
    L.append("")
    L.append(
        f"**3. Chunked prefill at the default budget changes almost nothing here.** vLLM 0.32's V1 scheduler only "
        f"accepts chunked prefill off when `max_num_batched_tokens >= max_model_len` (2048 here; 512 is rejected, see "
        f"above), and with chunking on at the same 2048-token budget (the CPU serving default) a {long_len}-token "
        f"prompt still fits one step, so long prefills still came in big steps: {v(ON, 'steps_with_long_prefill')} "
        f"steps carried long prefill (off: {v(OFF, 'steps_with_long_prefill')}), at "
        f"{v(ON, 'long_prefill_step_ms.p50_ms')} ms each (off: {v(OFF, 'long_prefill_step_ms.p50_ms')} ms). The one "
        f"difference: with chunking, a long prompt that does not fit what is left of the budget is cut to fill it "
        f"instead of waiting, so a step can carry one long prompt whole plus the first piece of the next (up to "
        f"{A[ON]['max_long_prefill_tokens_per_step']['max']:,.0f} long-prompt tokens in one step; off: at most "
        f"{A[OFF]['max_long_prefill_tokens_per_step']['max']:,.0f}). "
        f"Short TTFT p90 {v(ON, 'short_ttft.p90_ms')} ms vs "
        f"{v(OFF, 'short_ttft.p90_ms')} ms ({compare(A[ON]['short_ttft.p90_ms'], A[OFF]['short_ttft.p90_ms'])}), "
        f"short ITL in long-prefill steps {v(ON, 'short_itl_in_long_prefill_steps.p50_ms')} ms vs "
        f"{v(OFF, 'short_itl_in_long_prefill_steps.p50_ms')} ms "
        f"({compare(A[ON]['short_itl_in_long_prefill_steps.p50_ms'], A[OFF]['short_itl_in_long_prefill_steps.p50_ms'])}). "
        f"Chunking only bites when the budget is smaller than the prompts.")
    L.append("")
    L.append(
        f"**4. A small budget bounds the stall, not the wait.** With a 512-token budget no step exceeded "
        f"{v(SMALL, 'max_step_tokens')} tokens, the {n_long} long prompts took {v(SMALL, 'steps_with_long_prefill')} "
        f"steps instead of {v(OFF, 'steps_with_long_prefill')}, a long-prefill step cost "
        f"{v(SMALL, 'long_prefill_step_ms.p50_ms')} ms instead of {v(OFF, 'long_prefill_step_ms.p50_ms')} ms, and the "
        f"short-request ITL in those steps was {v(SMALL, 'short_itl_in_long_prefill_steps.p50_ms')} ms ({itl_small}; "
        f"off: {v(OFF, 'short_itl_in_long_prefill_steps.p50_ms')} ms). The prefill work is the same, only cut into "
        f"pieces: decode time each short request lost to long prefills was "
        f"{v(SMALL, 'short_decode_time_lost_to_long_prefill_ms')} ms vs {v(OFF, 'short_decode_time_lost_to_long_prefill_ms')} ms, "
        f"in {v(SMALL, 'itl_spikes')} spikes instead of {v(OFF, 'itl_spikes')}. "
        + (f"Short TTFT p90 was lower ({v(SMALL, 'short_ttft.p90_ms')} ms vs {v(OFF, 'short_ttft.p90_ms')} ms), but "
           if ttft_small == "lower" else
           f"Short TTFT did not get better: p90 {v(SMALL, 'short_ttft.p90_ms')} ms vs {v(OFF, 'short_ttft.p90_ms')} ms "
           f"({ttft_small}), and ")
        + f"{v(SMALL, 'shorts_behind_long_prefill')} short requests (off: {v(OFF, 'shorts_behind_long_prefill')}) had long "
        f"prefill between their arrival and first token. The reason is in `Scheduler.schedule()` "
        f"(`v1/core/sched/scheduler.py`): running requests are scheduled first, then the waiting queue, and a long "
        f"prompt that is part-way through its prefill is a running request. Each step its next chunk takes whatever "
        f"the decodes leave of the budget, and a short request that just arrived gets what is left, which is nothing "
        f"while the long prompt still has a budget's worth of tokens to go. So it waits for (nearly) the whole long "
        f"prefill, now spread over more steps. Long TTFT p50: {v(SMALL, 'long_ttft.p50_ms')} ms vs {v(OFF, 'long_ttft.p50_ms')} ms "
        f"({compare(A[SMALL]['long_ttft.p50_ms'], A[OFF]['long_ttft.p50_ms'])}); output tokens/s "
        f"{v(SMALL, 'output_tokens_per_s')} vs {v(OFF, 'output_tokens_per_s')} "
        f"({compare(A[SMALL]['output_tokens_per_s'], A[OFF]['output_tokens_per_s'])}; at this arrival rate throughput "
        f"follows the arrivals).")
    L.append("")
    L.append(
        "**What goes wrong when long and short requests mix**: prefill and decode are paid in the same steps, from "
        "one token budget, in arrival order. A long prompt (a) holds back the short requests queued behind it, so their "
        "TTFT depends on someone else's prompt (the tail of the short-request TTFT is made of exactly those requests), "
        "and (b) stretches the step for every request already streaming, which shows up as ITL spikes. Chunked prefill "
        "fixes (b) only with a budget below the prompt length, and pays for it with more steps; it does not fix (a), "
        "because the partly prefilled long prompt keeps first claim on each step's budget. Fixing (a) means reserving "
        "part of every step for short prefills while long ones run: that is patch 0002's per-step token cap for long "
        "prefills (`--max-long-prefill-tokens-per-step`), and the knob sweep over `max_num_batched_tokens`, "
        "`long_prefill_token_threshold` and the cap lives in [`experiments/patch0002`](../../patch0002/README.md).")
    return L
