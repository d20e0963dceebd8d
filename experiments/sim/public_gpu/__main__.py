"""python -m experiments.sim.public_gpu extract|fit|replay|report (see README.md beside this file)."""
from __future__ import annotations

import argparse
from pathlib import Path

from experiments.sim.public_gpu import crossval, extract, fit, published, report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m experiments.sim.public_gpu")
    sub = ap.add_subparsers(dest="cmd", required=True)
    ex = sub.add_parser("extract", help="raw public experiments -> results/reference/sim/public_gpu/ facts")
    ex.add_argument("--mirror", type=Path, required=True, help="git dir of inference-sim/inference-sim")
    ex.add_argument("--companion", type=Path, help="git dir of inference-sim/sim-to-real-accuracy-validation")
    f = sub.add_parser("fit", help="fit public-gpu-h100 on the fitted experiments (replays them)")
    f.add_argument("--post-hoc", action="store_true",
                   help="the form tried after the held-out results were seen -> cost_model_post_hoc.json")
    sub.add_parser("replay", help="replay every experiment with both cost models (run under the measure lock)")
    sub.add_parser("crossval", help="leave-one-out fits and replays (~25 min on 2 cores)")
    sub.add_parser("report", help="README tables from the result files")
    args = ap.parse_args(argv)
    if args.cmd == "extract":
        extract.extract_all(extract.git_reader(args.mirror))
        if args.companion:
            published.extract(args.companion)
    elif args.cmd == "fit":
        if args.post_hoc:
            fit.fit(fit.POST_HOC_MODEL_PATH, terms=fit.POST_HOC_TERMS)
        else:
            fit.fit()
    elif args.cmd == "replay":
        report.run()
    elif args.cmd == "crossval":
        crossval.run()
    else:
        report.write_readme()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
