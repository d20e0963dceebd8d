"""Workload rows -> prompt token ids, tokenized as the server tokenizes a completion prompt."""
from __future__ import annotations

import json
from pathlib import Path

# Tokenizer classes that add nothing to the tokenizer.json they load (its post-processor already places
# any special tokens): for these the `tokenizers` library gives the server's ids without importing
# transformers' tokenizer machinery, a few seconds of every simulator process's start on 2 cores.
PLAIN_FAST_CLASSES = ("PreTrainedTokenizerFast",)


def plain_tokenizer_json(model: str) -> Path | None:
    """The model's tokenizer.json when its tokenizer class is a plain fast tokenizer, else None."""
    path, cfg = Path(model) / "tokenizer.json", Path(model) / "tokenizer_config.json"
    if not (path.is_file() and cfg.is_file()):
        return None
    return path if json.loads(cfg.read_text()).get("tokenizer_class") in PLAIN_FAST_CLASSES else None


class Tokenizer:
    """The model's tokenizer, special tokens added as `vllm serve` does for /v1/completions: its
    tokenizer.json through `tokenizers` for a plain fast tokenizer (the same ids, pinned by
    `test_fast_path_tokenizes_as_the_server_does`), else Hugging Face's AutoTokenizer."""

    def __init__(self, model: str):
        plain = plain_tokenizer_json(model)
        if plain is not None:
            from tokenizers import Tokenizer as Fast

            fast = Fast.from_file(str(plain))
            self.encode = lambda text: fast.encode(text).ids
        else:
            from transformers import AutoTokenizer

            auto = AutoTokenizer.from_pretrained(model)
            self.encode = lambda text: auto(text).input_ids
        self.cache: dict[str, list[int]] = {}

    def ids(self, prompt: str) -> list[int]:
        if prompt not in self.cache:
            self.cache[prompt] = self.encode(prompt)
        return self.cache[prompt]
