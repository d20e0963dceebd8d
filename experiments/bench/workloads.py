"""Bench workloads as data: generated deterministically from a seed, stored with `datasets`.

shared_prefix_chat and mixed_long_short prompts are text made of whole words
from the embedded tokenizer's vocabulary (" word" tokens), so re-tokenising
them on the server gives (almost) the planned lengths. long_docs prompts are
real English and code: token windows of vLLM's own documentation in the pinned
0.32.0 source tree (`make source`), decoded back to text. Each workload is saved as a `datasets` directory (what the
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

from tools.pins import REPO_ROOT, SOURCE_DIR

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


@dataclass(frozen=True)
class LongDocs:
    """Documents several times the per-step token budget among short chat turns (real text).

    With the long-docs preset's budget of 512 tokens per step a document's
    prefill spans 4-7 steps, so a short turn arriving behind one waits for
    them: the head-of-line blocking patches 0002/0003 address.
    """
    name: str = "long_docs"
    num_requests: int = 96
    long_fraction: float = 0.25
    long_tokens: tuple[int, int] = (2048, 3584)
    short_tokens: tuple[int, int] = (64, 256)
    output_tokens: int = 32


@dataclass(frozen=True)
class LongDocsBurst(LongDocs):
    """long_docs drawn afresh (other windows: the name seeds the generator) for a second arrival
    pattern in the same server run, e.g. everything at once next to a Poisson rate."""
    name: str = "long_docs_burst"
    num_requests: int = 64


@dataclass(frozen=True)
class Agentic:
    """Agent sessions over long contexts, with cold long prompts among them (#57427's traffic).

    Each session opens with its context (cold: several times a 512-token step budget), then sends
    follow-ups, each the whole history so far plus a short new turn: the history is in the prefix
    cache, so a follow-up's uncached part is its new turn ("short": cache-hit follow-ups, judged by
    what is left to compute, not by prompt length). Openers and cold prompts are "long". Rows are in
    arrival order: the openers first, then the sessions' follow-ups interleaved at random (each
    session's in order) with the cold prompts at random places among them. With the defaults ~90% of
    prompt tokens can be served from the cache; the bench reports the server's measured hit rate.
    """
    name: str = "agentic"
    num_sessions: int = 4
    turns_per_session: int = 20
    context_words: int = 1536
    turn_words: int = 32
    num_cold: int = 3
    cold_words: int = 2048
    output_tokens: int = 32

    @property
    def num_requests(self) -> int:
        return self.num_sessions * self.turns_per_session + self.num_cold


@dataclass(frozen=True)
class AgenticBurst(Agentic):
    """agentic drawn afresh (the name seeds the generator), fewer sessions: the same kind of traffic sent
    all at once, for the at-capacity arrival pattern beside the Poisson one in the same server run."""
    name: str = "agentic_burst"
    num_sessions: int = 3
    turns_per_session: int = 12
    num_cold: int = 2


@dataclass(frozen=True)
class CacheHitTurns:
    """Short turns over a few shared long contexts (prefix-cache hits: only the turn is computed) with
    long documents (cache misses) mixed in, real text. A turn's prompt is long, its uncached part short:
    the case where "long" must be judged after the prefix-cache hit."""
    name: str = "cache_hit_turns"
    num_requests: int = 64
    long_fraction: float = 0.125
    long_tokens: tuple[int, int] = (2048, 3584)
    num_contexts: int = 2
    context_tokens: int = 1024
    turn_tokens: tuple[int, int] = (32, 128)
    output_tokens: int = 32



WorkloadSpec = SharedPrefixChat | MixedLongShort | LongDocs | Agentic | CacheHitTurns
SPECS = {"shared_prefix_chat": SharedPrefixChat, "mixed_long_short": MixedLongShort, "long_docs": LongDocs,
         "long_docs_burst": LongDocsBurst, "agentic": Agentic, "agentic_burst": AgenticBurst,
         "cache_hit_turns": CacheHitTurns}
# Characters of documentation tokenised for long_docs: ~4x the tokens one workload draws.
CORPUS_CHARS = 2_000_000


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


def docs_dir() -> Path:
    return SOURCE_DIR / "docs"


@lru_cache(maxsize=2)
def corpus_ids(tokenizer_path: str = str(DEFAULT_TOKENIZER)) -> tuple[int, ...]:
    """Token ids of vLLM 0.32.0's documentation (Markdown files in path order)."""
    from tokenizers import Tokenizer

    files = sorted(docs_dir().rglob("*.md"))
    if not files:
        raise FileNotFoundError(f"{docs_dir()} holds no Markdown: the long_docs workload reads vLLM's "
                                "docs from the pinned source tree; run `make source` first")
    text = "\n\n".join(f.read_text(errors="replace") for f in files)[:CORPUS_CHARS]
    return tuple(Tokenizer.from_file(tokenizer_path).encode(text).ids)


def _doc_window(rng: random.Random, ids: tuple[int, ...], n: int, tokenizer_path: str) -> str:
    start = rng.randrange(0, len(ids) - n)
    return _tokenizer(tokenizer_path).decode(list(ids[start:start + n]))


@lru_cache(maxsize=2)
def _tokenizer(tokenizer_path: str):
    from tokenizers import Tokenizer

    return Tokenizer.from_file(tokenizer_path)


def request_kinds(rows: list[dict]) -> list[str] | None:
    """Each request's class for per-class latency ("short"/"long", as the workload labels it), or None
    for a workload without the two classes."""
    kinds = [r.get("kind") for r in rows]
    return kinds if set(kinds) == {"short", "long"} else None


def _agentic_rows(spec: Agentic, rng: random.Random, words: tuple[str, ...]) -> list[dict]:
    def row(i: int, kind: str, prompt: str) -> dict:
        return {"request_id": f"{spec.name}-{i}", "kind": kind, "prompt": prompt, "output_tokens": spec.output_tokens}

    histories = [_text(rng, words, spec.context_words) for _ in range(spec.num_sessions)]
    rows = [row(i, "long", h) for i, h in enumerate(histories)]
    order = [s for s in range(spec.num_sessions) for _ in range(spec.turns_per_session - 1)]
    rng.shuffle(order)  # which session speaks next; each session's turns stay in order
    events: list[int | None] = list(order)
    for _ in range(spec.num_cold):
        events.insert(rng.randrange(len(events) + 1), None)
    for event in events:
        i = len(rows)
        if event is None:
            rows.append(row(i, "long", _text(rng, words, spec.cold_words)))
        else:
            histories[event] += " " + _text(rng, words, spec.turn_words)
            rows.append(row(i, "short", histories[event]))
    return rows


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
    elif isinstance(spec, LongDocs):
        ids = corpus_ids(str(tokenizer_path))
        n_long = max(1, round(spec.num_requests * spec.long_fraction))
        long_slots = set(rng.sample(range(spec.num_requests), n_long))
        for i in range(spec.num_requests):
            kind = "long" if i in long_slots else "short"
            low, high = spec.long_tokens if kind == "long" else spec.short_tokens
            n = rng.randint(low, high)
            rows.append({"request_id": f"{spec.name}-{i}", "kind": kind,
                         "prompt": _doc_window(rng, ids, n, str(tokenizer_path)),
                         "output_tokens": spec.output_tokens})
    elif isinstance(spec, Agentic):
        rows = _agentic_rows(spec, rng, words)
    elif isinstance(spec, CacheHitTurns):
        ids = corpus_ids(str(tokenizer_path))
        contexts = [_doc_window(rng, ids, spec.context_tokens, str(tokenizer_path))
                    for _ in range(spec.num_contexts)]
        n_long = max(1, round(spec.num_requests * spec.long_fraction))
        long_slots = set(rng.sample(range(spec.num_requests), n_long))
        for i in range(spec.num_requests):
            if i in long_slots:
                kind, prompt = "long", _doc_window(rng, ids, rng.randint(*spec.long_tokens), str(tokenizer_path))
            else:
                turn = _doc_window(rng, ids, rng.randint(*spec.turn_tokens), str(tokenizer_path))
                kind, prompt = "short", contexts[i % spec.num_contexts] + "\n\n" + turn
            rows.append({"request_id": f"{spec.name}-{i}", "kind": kind, "prompt": prompt,
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
            "dataset_dir": str(ds_dir), "jsonl": str(jsonl), "kinds": request_kinds(workload.rows)}
    (out_dir / f"{workload.name}.meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def load_rows(dataset_dir: Path) -> list[dict]:
    from datasets import load_from_disk

    return load_from_disk(str(dataset_dir)).to_list()


def main(argv: list[str] | None = None) -> int:
    """Write workloads as vllm bench serve's custom JSONL (plus the datasets dir), e.g. for a GPU run."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m experiments.bench.workloads", description=main.__doc__)
    ap.add_argument("names", nargs="+", choices=sorted(SPECS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    for name in args.names:
        meta = save(generate(make_spec(name), seed=args.seed), args.out)
        print(f"workloads: {meta['jsonl']} ({meta['num_requests']} requests, fingerprint {meta['fingerprint']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
