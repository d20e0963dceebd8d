"""Render the bench summary: a text/markdown table and one PNG."""
from __future__ import annotations

from pathlib import Path

from experiments.common.fmt import bench_ci, bench_range
from experiments.common.fmt import bench_value as fmt
from experiments.common.plots import plt, save_figure

HEADLINE = ("output_throughput", "total_token_throughput", "median_ttft_ms", "p99_ttft_ms",
            "short_p90_ttft_ms", "median_tpot_ms", "median_itl_ms", "peak_rss_mb", "kv_cache_usage_max",
            "cpu_ms_per_output_token", "peak_gpu_mem_mb", "tokens_per_step", "steal_share", "others_cpu_share")


def floor_cell(row: dict) -> str:
    """The A/A floor (the minimum detectable effect) and the number of identical-arm pairs it pools;
    in a paired bench the within-repeat one, the across-runs one beside it."""
    pairs = f", {row['noise_floor_pairs']} pairs" if row.get("noise_floor_pairs") is not None else ""
    if row.get("interleaved"):
        return f"{_pct(row['noise_floor'])} paired{pairs} ({_pct(row.get('noise_floor_unpaired'))} across runs)"
    return _pct(row["noise_floor"]) + (f" ({pairs[2:]})" if pairs else "")


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.1f}%"


PAIRED_NOTE = ("Paired bench (interleave: passes): the variants' servers were up at once and their timed passes "
               "alternated A B B A; delta = median over repeats of the difference within a repeat, A/A floor = "
               "largest such difference between the two baselines, 95% CI = bootstrap over adjacent pass pairs.\n\n")


def rows_for_table(summary: list[dict], reference: str = "baseline", headline_only: bool = False) -> list[list[str]]:
    out = []
    for row in summary:
        if headline_only and row["metric"] not in HEADLINE:
            continue
        comparisons = [(v, reference, cmp) for v, cmp in row["vs_" + reference].items()]
        comparisons += [(cmp.get("variant", v), cmp["against"], cmp) for v, cmp in row.get("pairs", {}).items()]
        for v, against, cmp in comparisons:
            ref, s = row["variants"][against], row["variants"][v]
            out.append([row["mode"], row["workload"], row["metric"],
                        bench_range(ref) + ("" if against == reference else f" ({against})"),
                        bench_range(s) + ("" if v == "patched" else f" ({v})"),
                        fmt(cmp["delta"], pct=True), bench_ci(cmp.get("ci95")),
                        floor_cell(row),
                        cmp["verdict"], str(s["n"])])
    return out


COLUMNS = ["mode", "workload", "metric", "baseline median [min, max]", "patched median [min, max]",
           "delta", "delta 95% CI (bootstrap)", "A/A noise floor", "verdict", "runs"]


def markdown_table(summary: list[dict], headline_only: bool = False) -> str:
    rows = rows_for_table(summary, headline_only=headline_only)
    head = [PAIRED_NOTE.strip(), ""] if any(r.get("interleaved") for r in summary) else []
    lines = head + ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def text_table(summary: list[dict], headline_only: bool = True) -> str:
    rows = [COLUMNS] + rows_for_table(summary, headline_only=headline_only)
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows) + "\n"


def plot_summary(summary: list[dict], path: Path, source: str, reference: str = "baseline") -> Path:
    """Relative change of each headline metric vs baseline, with the run spread and the noise band."""
    rows = [r for r in summary if r["metric"] in HEADLINE and r["vs_" + reference]]
    labels, deltas, lo, hi, floors, colors = [], [], [], [], [], []
    for r in rows:
        ref = r["variants"][reference]["median"]
        for v, cmp in r["vs_" + reference].items():
            s = r["variants"][v]
            if not ref or cmp["delta"] is None:
                continue
            labels.append(f"{r['mode']}/{r['workload']}/{r['metric']}" + ("" if v == "patched" else f" [{v}]"))
            deltas.append(cmp["delta"] * 100)
            lo.append(cmp["delta"] * 100 - (s["min"] - ref) / ref * 100)
            hi.append((s["max"] - ref) / ref * 100 - cmp["delta"] * 100)
            floors.append((r["noise_floor"] or 0) * 100)
            colors.append({"better": "tab:green", "worse": "tab:red"}.get(cmp["verdict"], "tab:grey"))
    fig, ax = plt.subplots(figsize=(9, 0.35 * max(len(labels), 4) + 1.2))
    y = range(len(labels))
    ax.barh(list(y), deltas, xerr=[[max(0, v) for v in lo], [max(0, v) for v in hi]], color=colors, alpha=0.8)
    for i, f in enumerate(floors):
        ax.plot([-f, f], [i, i], color="black", lw=6, alpha=0.15, solid_capstyle="butt")
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(list(y), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("patched vs baseline, % (bar: median; whisker: run min..max; grey band: A/A noise floor)")
    ax.set_title("Baseline vs patched (green = better beyond noise, red = worse, grey = within noise)", fontsize=9)
    return save_figure(fig, path, source=source)
