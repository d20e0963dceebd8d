"""Leave-one-out: for each experiment, the pre-registered form (`fit.TERMS`) fitted on the other three and
replayed on it: every run held out once, with the form fixed before any result was seen. Left out, the
Llama-2-7B run is predicted from CodeLlama-34B runs alone, where the weight read and the fixed per-step
overhead cannot be told apart (both constant per step for one model): that row tests the shape scaling
under whatever split of the two the fit lands on.

    python -m experiments.sim.public_gpu crossval   # -> results/reference/sim/public_gpu/crossval/
"""
from __future__ import annotations

import json

from experiments.sim.public_gpu import extract, fit, metrics, replay, report

CROSSVAL_DIR = report.CROSSVAL_DIR
CROSSVAL_PATH = report.CROSSVAL_PATH


def run(names=extract.EXPERIMENTS) -> dict:
    CROSSVAL_DIR.mkdir(parents=True, exist_ok=True)
    results = []
    for left in names:
        path = CROSSVAL_DIR / f"fit-without-{left}.json"
        fit.fit(path, names=[n for n in names if n != left], cross_validation=True)
        (meta, rows, out), = replay.replay([left], "fitted", fit_path=path).values()
        results.append({"experiment": left, "model": meta["model"], "fit": path.name,
                        "errors": report.score(rows, out)})
    doc = {"method": "leave one out: the pre-registered form fitted on the other experiments, replayed on this one",
           "terms": list(fit.TERMS), "results": results}
    CROSSVAL_PATH.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    return doc
