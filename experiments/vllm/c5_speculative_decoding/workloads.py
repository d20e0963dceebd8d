"""Prompt sets for the real run: one where n-gram lookup can find the continuation, one where it cannot.

Both come from CPython standard-library files that the tiny model was *not*
trained on (the files after the training corpus's byte limit), tokenised with
the repo tokenizer:
- repetitive: a ~`unit` token snippet written out 3 times, then the first few
  tokens of a 4th copy; the continuation is in the prompt, so a prompt-lookup
  drafter proposes it and a model that copies accepts it (the shape of
  code-editing, RAG quoting, "rewrite this with one change").
- non-repetitive: the first `prompt_len` tokens of distinct files; whatever
  the model writes next is mostly not a copy of the prompt.
"""
from __future__ import annotations

import sysconfig
from pathlib import Path


def heldout_files(n: int) -> list[Path]:
    from tools.train_tiny_model import corpus_files

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    trained = set(corpus_files(8 << 20))
    candidates = sorted(p for p in stdlib.glob("*/*.py") if "test" not in p.parts[-2])
    out = [p for p in candidates if p not in trained and p.stat().st_size > 4000]
    return out[:n]


def build_workloads(tokenizer_path: Path, n_prompts: int, prompt_len: int = 96, unit: int = 40) -> dict:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_path))
    files = heldout_files(2 * n_prompts)
    encoded = [tok.encode(f.read_text(errors="replace")).ids for f in files]
    encoded = [ids for ids in encoded if len(ids) > 4 * unit + prompt_len]
    assert len(encoded) >= 2 * n_prompts, "not enough held-out files"
    repetitive, non_repetitive = [], []
    for ids in encoded[:n_prompts]:
        snippet = ids[prompt_len:prompt_len + unit]
        repetitive.append([1] + snippet * 3 + snippet[:4])
    for ids in encoded[n_prompts:2 * n_prompts]:
        non_repetitive.append([1] + ids[:prompt_len])
    return {"repetitive": repetitive, "non_repetitive": non_repetitive,
            "_files": [str(f.name) for f in files[:2 * n_prompts]]}
