"""python -m experiments.bench --preset default|smoke|overhead-0001|aa [--repeats N]"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from experiments.bench import presets, runner


def detect_backend() -> str:
    backend_file = Path(sys.prefix) / ".backend"
    if os.environ.get("BACKEND"):
        return os.environ["BACKEND"]
    return backend_file.read_text().strip() if backend_file.exists() else "cpu"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(prog="python -m experiments.bench", description=__doc__)
    ap.add_argument("--preset", default="default", choices=sorted(presets.PRESETS))
    ap.add_argument("--repeats", type=int, help="override the preset's repeat count")
    ap.add_argument("--variants", help="comma-separated variants (default: the preset's)")
    ap.add_argument("--model", help="model dir or hub id (default: MODEL env or the embedded tiny Llama)")
    ap.add_argument("--out", type=Path, default=runner.DEFAULT_OUT, help="results root")
    ap.add_argument("--profile-dir", type=Path, help="also capture torch profiler traces here (adds overhead)")
    args = ap.parse_args(argv)
    cfg = presets.resolve(args.preset, repeats=args.repeats, model=args.model, backend=detect_backend(),
                          variants=args.variants.split(",") if args.variants else None)
    if args.profile_dir:
        cfg["profile_dir"] = str(args.profile_dir.resolve())
    print(f"[bench] preset {args.preset}: {cfg['description']}; variants {cfg['variants']}, "
          f"{cfg['repeats']} repeat(s), modes {cfg['modes']}, model {cfg['model']}", flush=True)
    try:
        runner.run_bench(cfg, args.out, argv=["python", "-m", "experiments.bench", *argv])
    except (KeyboardInterrupt, runner.BenchInterrupted):
        return 130
    except RuntimeError as exc:
        print(f"[bench] FAILED: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
