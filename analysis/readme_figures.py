"""The top README's "Reference results" section, rendered from committed result files.

`make report` runs it after the PR drafts (python -m analysis.readme_figures). For each preset,
the newest complete bench under results/reference/ gives a few headline rows
(median [min, max], delta, A/A noise floor, verdict: the PR draft's table code);
results/reference/*/client_capacity.json gives the load client's headroom.
Nothing is typed in: re-running `make report` after new benches updates it.
"""
from __future__ import annotations

from pathlib import Path

from analysis import report
from experiments.bench import store
from experiments.bench.presets import PRESETS
from experiments.common.docs import fill_file
from experiments.common.results import read_result
from tools import pins

README = pins.REPO_ROOT / "README.md"
BLOCK = "reference-results"  # the top README's generated block (experiments.common.docs markers)
# Headline metrics per preset; the full tables are in each bench's summary.md and the PR drafts.
HEADLINES = {
    "default": ("output_throughput", "median_ttft_ms", "median_tpot_ms", "peak_rss_mb"),
    "overhead-0001": ("output_throughput",),
    # the instrument itself: baseline against baseline, so every delta here is noise
    "aa": ("output_throughput", "median_ttft_ms", "cpu_ms_per_output_token"),
    # patches 0002/0003: every long-prefill arm side by side (report.comparison_section)
    "long-docs-sweep": report.COMPARISON_METRICS,
    "long-docs": report.COMPARISON_METRICS,
}


def bench_rows(preset: str, bench: Path) -> str:
    manifest = store.load_manifest(bench)
    m = manifest["provenance"]["machine"]
    if preset in report.COMPARISON_PRESETS:
        table = report.comparison_section(bench)
    else:
        table, _ = report.claims_table(store.summary(bench), HEADLINES[preset])
    command = f"make bench PRESET={preset}" if preset in PRESETS else manifest["provenance"]["command"]
    return (f"**`{command}`** -> [`{report.rel(bench)}`]({report.rel(bench)}/summary.md): "
            f"{manifest['repeats']} repeats, bench wall time {manifest['wall_s']:.0f} s on {m['cpu_model']} "
            f"({m['cpu_count']} cores, GPU: {m['gpu_model'] or 'none'}, load average at start {m['loadavg_1m']}), "
            f"{manifest['engine_dist']}=={manifest['engine_version']}; correctness gate: {manifest['gate']}.\n\n"
            f"{table}")


def capacity_line(path: Path) -> str:
    r = read_result(path)["results"]
    line = (f"Load client (`vllm bench serve`) against an instant stub server: "
            f"{r['stub_request_throughput']:.0f} requests/s")
    if "headroom" in r:
        line += (f", vs {r['engine_request_throughput']:.1f} requests/s sustained by the engine "
                 f"(baseline median, `{report.rel(Path(r['bench']))}`): headroom {r['headroom']:.0f}x")
    return line + f" ([`{report.rel(path)}`]({report.rel(path)})).\n"


def render(root: Path) -> str:
    # newest set per preset (and per arrival rate, for the sweeps), as in the PR drafts
    parts = [bench_rows(p, b) for p in HEADLINES for b in report.benches_for((p,), root)]
    parts += [capacity_line(p) for p in sorted(Path(root).rglob("client_capacity.json"))]
    if not parts:
        return "No complete reference result set yet: `make bench BENCH_OUT=results/reference/cpu`.\n"
    return "\n".join(parts)


def write(root: Path = report.REFERENCE_ROOT, readme: Path = README) -> bool:
    """Rewrite the section between the markers; False (and nothing written) if the README has none."""
    return fill_file(readme, {BLOCK: render(root)})


def main() -> int:
    if not write():
        raise SystemExit(f"{README}: reference-results markers missing")
    print(f"readme_figures: wrote {report.rel(README)} (reference results section)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
