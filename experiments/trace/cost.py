"""What tracing with nsys costs: offline tokens/s with and without nsys, and `make trace` wall time.

    python -m experiments.trace.cost [--repeats 3] [--variant patched]

Runs the trace workload (experiments.trace.run.TRACE_WORKLOAD, `--timed-passes` cold-cache passes,
median reported) alternately without nsys and under make trace's CPU recipe, each run a fresh
engine process with the same environment (VLLM_NVTX_SCOPES_FOR_PROFILING=1 in both: without a tool
attached an NVTX range is a no-op, so the difference is nsys itself). Writes
nsys_traces/cost/nsys-cost-<backend>-<UTC>.json with every run, the medians, and the wall time each
committed `make trace` run recorded in its manifest.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from experiments.bench import runner
from experiments.common.results import write_json_atomic
from experiments.trace import recipes, run
from tools import pins

OUT_DIR = run.TRACE_ROOT / "cost"


def trace_wall_times(root: Path = run.TRACE_ROOT) -> list[dict]:
    """Wall time of every complete `make trace` run under root, from its manifest."""
    rows = []
    for m in sorted(root.glob("*/trace_manifest.json")):
        doc = json.loads(m.read_text())
        if "wall_s" in doc:
            rows.append({"run_id": doc["run_id"], "recipe": doc.get("recipe"), "wall_s": doc["wall_s"],
                         "load_average_start": doc.get("load_average_start"),
                         "manifest": str(m.relative_to(pins.REPO_ROOT))})
    return rows


def render(doc: dict, source: str) -> str:
    """The result as a page (every figure from `doc`); says when the two ranges overlap."""
    by = {m: sorted(r["output_throughput"] for r in doc["runs"] if r["nsys"] == m) for m in ("off", "on")}
    loads = [r["load_average_start"] for r in doc["runs"]]
    overlap = by["on"][-1] >= by["off"][0] and by["off"][-1] >= by["on"][0]
    prov = doc["provenance"]
    lines = [f"# nsys cost: `{source}`", "",
             f"{doc['what']}; variant `{doc['variant']}`, workload {doc['workload']}, median of "
             f"{doc['timed_passes']} timed passes per run, {doc['repeats']} runs each, alternating off/on.", "",
             "| run | nsys | output tok/s | run wall s | load average at start |", "|---|---|---|---|---|"]
    lines += [f"| {r['repeat']} | {r['nsys']} | {r['output_throughput']:,.1f} | {r['wall_s']:.0f} | "
              f"{r['load_average_start']:.1f} |" for r in doc["runs"]]
    lines += ["", f"Median off {doc['median_output_throughput']['off']:,.1f} [{by['off'][0]:,.1f}, "
              f"{by['off'][-1]:,.1f}], on {doc['median_output_throughput']['on']:,.1f} [{by['on'][0]:,.1f}, "
              f"{by['on'][-1]:,.1f}] tok/s: on/off {doc['on_over_off']:.2f}.",
              ("The on and off ranges overlap: at load averages of "
               f"{min(loads):.1f}-{max(loads):.1f} on {prov['machine']['cpu_count']} cores, whatever nsys costs "
               "here is within the run-to-run spread; the ratio is not a finding." if overlap else
               "The on and off ranges do not overlap."), "",
             "`make trace` wall time, as each committed run recorded it:", ""]
    lines += [f"- `{t['run_id']}` ({t['recipe']}): {t['wall_s']:.0f} s, load average at start "
              f"{t['load_average_start']:.1f} ([manifest](../{Path(t['manifest']).relative_to('nsys_traces')}))"
              for t in doc["make_trace_wall_s"]]
    lines += ["", f"Made by `{prov['command']}` at {prov['utc']}; git {prov['git_sha']} (dirty: {prov['git_dirty']}); "
              f"{doc['engine_dist']}=={doc['engine_version']}; {prov['machine']['cpu_model']}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(prog="python -m experiments.trace.cost", description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--variant", default="patched", choices=("baseline", "patched"))
    ap.add_argument("--timed-passes", type=int, default=3)
    ap.add_argument("--out", type=Path, default=OUT_DIR)
    args = ap.parse_args(argv)
    if args.repeats < 1:
        raise SystemExit("--repeats must be >= 1")
    from experiments.bench.presets import detect_backend
    from experiments.common.provenance import provenance

    backend = detect_backend()
    recipe = recipes.choose(backend)
    if recipe.profiler != "nsys":
        raise SystemExit(f"no nsys on this machine ({recipe.why}); `make nsys` installs it")
    cfg = run.trace_config(None, backend, recipe)
    cfg["timed_passes"] = args.timed_passes
    info = runner.preflight(cfg)
    prov = provenance(argv=["python", "-m", "experiments.trace.cost", *argv])
    runs = []
    with tempfile.TemporaryDirectory(prefix="nsys-cost-") as tmp:
        meta = runner.prepare_workloads(cfg, Path(tmp) / "workloads")[cfg["offline_workload"]]
        for rep in range(1, args.repeats + 1):
            for mode in ("off", "on"):
                work = Path(tmp) / f"r{rep}-{mode}"
                work.mkdir()
                load = os.getloadavg()[0]
                t0 = time.time()
                print(f"[cost] repeat {rep}: nsys {mode}", flush=True)
                if mode == "off":
                    (work / "run").mkdir()
                    tput = runner.offline_run(cfg, args.variant, meta, work / "run")["output_throughput"]
                else:
                    tput = run.run_nsys_variant(recipe, cfg, args.variant, meta, work, 900)["output_throughput"]
                runs.append({"repeat": rep, "nsys": mode, "output_throughput": tput, "wall_s": time.time() - t0,
                             "load_average_start": load})
                print(f"[cost]   {tput:,.1f} output tok/s", flush=True)
    med = {m: statistics.median(r["output_throughput"] for r in runs if r["nsys"] == m) for m in ("off", "on")}
    doc = {"what": "offline output tokens/s of one engine, nsys off vs on (make trace's CPU recipe)",
           "variant": args.variant, "recipe": recipe.nsys_args, "workload": run.TRACE_WORKLOAD,
           "timed_passes": args.timed_passes, "repeats": args.repeats, "backend": backend, **info,
           "provenance": prov, "runs": runs,
           "median_output_throughput": med, "on_over_off": med["on"] / med["off"],
           "make_trace_wall_s": trace_wall_times()}
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = write_json_atomic(args.out / f"nsys-cost-{backend}-{stamp}.json", doc)
    path.with_suffix(".md").write_text(render(doc, path.name))
    print(f"[cost] nsys on/off = {doc['on_over_off']:.3f} (median {med['on']:,.1f} vs {med['off']:,.1f} tok/s); "
          f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
