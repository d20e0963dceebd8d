"""Entry point of one variant's simulator process: `python -m experiments.sim.child JOBS.json OUT.json`.

Started by `experiments.sim.api` with the bench's variant environment, so
`import vllm` here is the baseline install or build/vllm-patched. Runs every job
in the file (one process start per variant, not per point) and writes one result
per job; a job that fails writes its error instead, naming the cause.
"""
from __future__ import annotations

import json
import os
import sys
import time

from experiments.sim import bench_json, cost_models, driver, engine_config
from experiments.sim.errors import SimInputError, SimStalled
from experiments.sim.prompts import Tokenizer


def run_job(job: dict, tokenizer: Tokenizer) -> dict:
    model = job["model"]
    cost = cost_models.load(job["cost_model"], model)
    scheduler, vllm_config, hasher = engine_config.build_scheduler(model, job["engine_args"])
    rows = []
    for i, row in enumerate(job["rows"]):
        ids = row.get("prompt_token_ids") or tokenizer.ids(row["prompt"])
        rows.append({"request_id": row["request_id"], "prompt_token_ids": ids,
                     "output_tokens": row["output_tokens"],
                     **({"arrival_step": row["arrival_step"]} if job.get("by_step")
                        else {"arrival_s": job["arrivals"][i]})})
    if job.get("priority_from") == "uncached":
        for row, prio in zip(rows, driver.uncached_estimates([r["prompt_token_ids"] for r in rows])):
            row["priority"] = prio
    t0 = time.perf_counter()
    sim = driver.run(scheduler, hasher, rows, cost, by_step=job.get("by_step", False),
                     stall_steps=job.get("stall_steps", 64), record_decisions=job.get("record_decisions", False),
                     spec_acceptance=job.get("spec_acceptance"), spec_seed=job.get("seed", 0))
    loop_s = time.perf_counter() - t0
    order = [r["request_id"] for r in job["rows"]]
    raw = bench_json.bench_serve_json(sim["requests"], order, model=model, rate=job["rate"],
                                      burstiness=job.get("burstiness", 1.0), label=cost.label)
    label = cost.label if job.get("spec_acceptance") is None else (
        f"{cost.label}; speculative decoding: {scheduler.num_spec_tokens} drafts per step, each accepted with "
        f"probability {job['spec_acceptance']} (modelled)")
    return {"ok": True, "label": label, "cost_model": cost.to_json(),
            "scheduler": engine_config.scheduler_summary(vllm_config), "bench_serve": raw,
            "spec_decode": None if job.get("spec_acceptance") is None else {
                "num_speculative_tokens": scheduler.num_spec_tokens, "acceptance": job["spec_acceptance"],
                "acceptance_model": "each draft token accepted with this probability once the ones before it "
                                    "were (modelled: no drafter runs)",
                "draft_tokens": sum(s["draft_tokens"] for s in sim["steps"]),
                "accepted_drafts": sum(s["accepted_drafts"] for s in sim["steps"])},
            "steps": sim["steps"], "loop_wall_s": loop_s}


def main(jobs_path: str, out_path: str) -> int:
    spec = json.loads(open(jobs_path).read())
    results, tokenizers = [], {}
    for job in spec["jobs"]:
        try:
            model = engine_config.resolve_model(job["model"])
            job["model"] = model
            if model not in tokenizers:
                tokenizers[model] = Tokenizer(model)
            results.append(run_job(job, tokenizers[model]))
        except (SimInputError, SimStalled) as exc:
            results.append({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
    tmp = out_path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump({"results": results}, fh)
    os.replace(tmp, out_path)
    return 0


if __name__ == "__main__":
    rc = main(sys.argv[1], sys.argv[2])
    # The results are on disk (written whole, then renamed). Tearing down the torch/vLLM module graph at
    # interpreter exit takes seconds on 2 cores and changes nothing, so leave without it.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)
