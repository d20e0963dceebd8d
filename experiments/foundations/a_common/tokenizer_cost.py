"""CPU cost of the tokenizer and the detokenizer on the request path, with the repo's own offline tokenizer.

    python -m experiments.foundations.a_common.tokenizer_cost [--quick]

The day 6-7 note draws one request's path; its tokenizer and detokenizer boxes
take their figures from here (the forward box from lab c1). Tokenizer: `encode`
of a chat prompt with the Hugging Face `tokenizers` Rust tokenizer that vLLM
itself loads for `models/tiny-llama-trained`. Detokenizer: what a streaming
server does per generated token, decoding the text so far and emitting the new
suffix (the simple form of vLLM's incremental detokenization). Times are CPU
time of the calling thread (`time.thread_time`), so other programs on the
shared cores do not inflate them; medians over repeats.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from experiments.common.provenance import REPO_ROOT
from experiments.common.results import read_result, write_result

MODEL_DIR = REPO_ROOT / "models" / "tiny-llama-trained"
RESULT = REPO_ROOT / "experiments" / "foundations" / "a_common" / "results" / "tokenizer_cost.json"
BENCHMARK_VERSION = 1
PROMPT = ("You are a helpful assistant. Summarise the following support ticket in two sentences and suggest "
          "the next step for the on-call engineer. The customer reports that streaming responses stop after "
          "a few tokens when the request carries a long system prompt, and that retrying the same request "
          "sometimes succeeds. ")


def _cpu_us(fn, repeats: int) -> dict:
    samples = []
    for _ in range(repeats):
        t = time.thread_time()
        fn()
        samples.append((time.thread_time() - t) * 1e6)
    return {"median_us": statistics.median(samples), "min_us": min(samples), "max_us": max(samples), "n": repeats}


def measure(repeats: int, prompt_repeat: int, output_tokens: int) -> dict:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(MODEL_DIR / "tokenizer.json"))
    prompt = PROMPT * prompt_repeat
    ids = tok.encode(prompt).ids
    encode = _cpu_us(lambda: tok.encode(prompt), repeats)
    generated = ids[:output_tokens]  # real token ids of this vocabulary, as if generated

    def stream_detokenize() -> None:
        sent = ""
        for n in range(1, len(generated) + 1):
            text = tok.decode(generated[:n])
            sent, _delta = text, text[len(sent):]

    detok = _cpu_us(stream_detokenize, repeats)
    return {"tokenizer": str(MODEL_DIR.relative_to(REPO_ROOT) / "tokenizer.json"),
            "prompt_chars": len(prompt), "prompt_tokens": len(ids), "encode_cpu": encode,
            "output_tokens": len(generated), "stream_detokenize_cpu": detok,
            "detokenize_us_per_token": detok["median_us"] / len(generated)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="few repeats; writes under build/")
    ap.add_argument("--out", type=Path, default=None, help="result file (default: the committed one, or build/ with --quick)")
    args = ap.parse_args(argv)
    repeats = 5 if args.quick else 200
    path = args.out or (REPO_ROOT / "build" / "tokenizer_cost_quick.json" if args.quick else RESULT)
    cfg = {"repeats": repeats, "prompt_repeat": 4, "output_tokens": 64, "timing": "time.thread_time, median"}
    write_result(path, measure(repeats, cfg["prompt_repeat"], cfg["output_tokens"]), config=cfg,
                 benchmark_version=BENCHMARK_VERSION, extra_packages=["tokenizers"])
    r = read_result(path)["results"]
    print(f"encode {r['prompt_tokens']} tokens: {r['encode_cpu']['median_us']:.0f} us CPU; streaming detokenize "
          f"{r['detokenize_us_per_token']:.1f} us/token over {r['output_tokens']} tokens -> {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
