"""The c3 workload: the bench's `mixed_long_short` prompts as token ids, plus an arrival schedule.

Pure and deterministic (same arguments -> same requests), so tests and the
engine child see exactly the same schedule. Prompts reuse
`experiments.bench.workloads` (whole-word text), tokenised with the trained
tiny model's tokenizer so a 1536-word document is ~1536 prompt tokens.
"""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from pathlib import Path

from experiments.bench import workloads as W
from experiments.common.provenance import REPO_ROOT

MODEL_DIR = REPO_ROOT / "models" / "tiny-llama-trained"


@dataclass(frozen=True)
class TimedRequest:
    request_id: str
    kind: str            # "long" | "short"
    arrival_s: float     # seconds after the start of the run
    prompt_token_ids: list[int]
    output_tokens: int

    @property
    def prompt_len(self) -> int:
        return len(self.prompt_token_ids)


def poisson_arrivals(n: int, rate_per_s: float, seed: int) -> list[float]:
    """n arrival times of a Poisson process (exponential gaps), first request at t = 0.

    A fixed seed makes it a fixed schedule: every repeat and every config sees the
    same arrivals, so differences come from the scheduler, not the traffic."""
    if n <= 0:
        return []
    if rate_per_s <= 0:
        raise ValueError("rate must be positive")
    rng = random.Random(f"c3-arrivals:{seed}")
    t, out = 0.0, [0.0]
    for _ in range(n - 1):
        t += rng.expovariate(rate_per_s)
        out.append(t)
    return out


def tokenize(texts: list[str], tokenizer_path: Path) -> list[list[int]]:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_path))
    return [e.ids for e in tok.encode_batch(texts, add_special_tokens=False)]


def build_requests(num_requests: int = 64, rate_per_s: float = 16.0, seed: int = 0,
                   long_words: int = 1536, short_words: int = 64, output_tokens: int = 32,
                   long_fraction: float = 0.125, model_dir: Path = MODEL_DIR) -> list[TimedRequest]:
    """mixed_long_short (bench workload, same seed -> same prompts) with Poisson arrivals in row order."""
    spec = W.make_spec("mixed_long_short", num_requests=num_requests, long_fraction=long_fraction,
                       long_words=long_words, short_words=short_words, output_tokens=output_tokens)
    tok_path = model_dir / "tokenizer.json"
    wl = W.generate(spec, seed=seed, tokenizer_path=tok_path)
    ids = tokenize([r["prompt"] for r in wl.rows], tok_path)
    times = poisson_arrivals(len(wl.rows), rate_per_s, seed)
    return [TimedRequest(request_id=f"{row['kind']}-{i:02d}", kind=row["kind"], arrival_s=t,
                         prompt_token_ids=p, output_tokens=row["output_tokens"])
            for i, (row, p, t) in enumerate(zip(wl.rows, ids, times))]


def to_jsonable(reqs: list[TimedRequest]) -> list[dict]:
    return [asdict(r) for r in reqs]


def from_jsonable(rows: list[dict]) -> list[TimedRequest]:
    return [TimedRequest(**r) for r in rows]
