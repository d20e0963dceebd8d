"""Bench workloads as data: generated deterministically from a seed, stored with `datasets`.

Prompts are text made of whole words from the embedded tokenizer's vocabulary
(" word" tokens), so re-tokenising them on the server gives (almost) the
planned lengths. Each workload is saved as a `datasets` directory (what the
offline runner reads) and as JSONL with `prompt` / `output_tokens` (what
`vllm bench serve --dataset-name custom` reads).
"""
from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

from tools.pins import REPO_ROOT

DEFAULT_TOKENIZER = REPO_ROOT / "models" / "tiny-llama" / "tokenizer.json"


@dataclass(frozen=True)
class SharedPrefixChat:
    """Chat-like requests: a few long system prompts shared by many requests."""
    name: str = "shared_prefix_chat"
    num_requests: int = 64
    num_prefixes: int = 4
    prefix_words: int = 384
    suffix_words: int = 96
    output_tokens: int = 64


@dataclass(frozen=True)
class MixedLongShort:
    """Short interactive requests with a few long documents mixed in (head-of-line blocking)."""
    name: str = "mixed_long_short"
    num_requests: int = 64
    long_fraction: float = 0.125
    long_words: int = 1536
    short_words: int = 64
    output_tokens: int = 32


WorkloadSpec = SharedPrefixChat | MixedLongShort
SPECS = {"shared_prefix_chat": SharedPrefixChat, "mixed_long_short": MixedLongShort}


@dataclass
class Workload:
    name: str
    seed: int
    spec: dict
    rows: list[dict] = field(repr=False)

    @property
    def fingerprint(self) -> str:
        blob = json.dumps({"spec": self.spec, "seed": self.seed, "rows": self.rows}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@lru_cache(maxsize=4)
def word_vocab(tokenizer_path: str = str(DEFAULT_TOKENIZER)) -> tuple[str, ...]:
    """Vocabulary entries that are a space + 3..10 ASCII letters (stable under re-tokenisation)."""
    vocab = json.loads(Path(tokenizer_path).read_text())["model"]["vocab"]
    words = sorted(t[1:] for t in vocab if t.startswith("Ġ") and t[1:].isascii()
                   and t[1:].isalpha() and 3 <= len(t) - 1 <= 10)
    if len(words) < 1000:
        raise ValueError(f"tokenizer {tokenizer_path} has too few word tokens ({len(words)})")
    return tuple(words)


def _text(rng: random.Random, words: tuple[str, ...], n: int) -> str:
    return " ".join(rng.choice(words) for _ in range(n))


def generate(spec: WorkloadSpec, seed: int = 0, tokenizer_path: Path = DEFAULT_TOKENIZER) -> Workload:
    """Same spec + seed + tokenizer -> byte-identical rows."""
    rng = random.Random(f"{spec.name}:{seed}")
    words = word_vocab(str(tokenizer_path))
    rows: list[dict] = []
    if isinstance(spec, SharedPrefixChat):
        prefixes = [_text(rng, words, spec.prefix_words) for _ in range(spec.num_prefixes)]
        for i in range(spec.num_requests):
            group = i % spec.num_prefixes
            rows.append({"request_id": f"{spec.name}-{i}", "kind": f"prefix{group}",
                         "prompt": prefixes[group] + " " + _text(rng, words, spec.suffix_words),
                         "output_tokens": spec.output_tokens})
    elif isinstance(spec, MixedLongShort):
        n_long = max(1, round(spec.num_requests * spec.long_fraction))
        long_slots = set(rng.sample(range(spec.num_requests), n_long))
        for i in range(spec.num_requests):
            is_long = i in long_slots
            rows.append({"request_id": f"{spec.name}-{i}", "kind": "long" if is_long else "short",
                         "prompt": _text(rng, words, spec.long_words if is_long else spec.short_words),
                         "output_tokens": spec.output_tokens})
    else:
        raise TypeError(f"unknown workload spec {spec!r}")
    return Workload(name=spec.name, seed=seed, spec=asdict(spec), rows=rows)


def make_spec(name: str, **overrides) -> WorkloadSpec:
    if name not in SPECS:
        raise ValueError(f"unknown workload {name!r}; known: {sorted(SPECS)}")
    return SPECS[name](**overrides)


def save(workload: Workload, out_dir: Path) -> dict:
    """Write <out_dir>/<name>/ (datasets) and <out_dir>/<name>.jsonl; return paths + fingerprint."""
    import datasets

    datasets.disable_progress_bars()
    out_dir.mkdir(parents=True, exist_ok=True)
    ds_dir = out_dir / workload.name
    datasets.Dataset.from_list(workload.rows).save_to_disk(str(ds_dir))
    jsonl = out_dir / f"{workload.name}.jsonl"
    with open(jsonl, "w") as fh:
        for row in workload.rows:
            fh.write(json.dumps({"prompt": row["prompt"], "output_tokens": row["output_tokens"]}) + "\n")
    meta = {"name": workload.name, "seed": workload.seed, "spec": workload.spec,
            "num_requests": len(workload.rows), "fingerprint": workload.fingerprint,
            "dataset_dir": str(ds_dir), "jsonl": str(jsonl)}
    (out_dir / f"{workload.name}.meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def load_rows(dataset_dir: Path) -> list[dict]:
    from datasets import load_from_disk

    return load_from_disk(str(dataset_dir)).to_list()
