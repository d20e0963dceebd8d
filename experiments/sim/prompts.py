"""Workload rows -> prompt token ids, tokenized as the server tokenizes a completion prompt."""
from __future__ import annotations


class Tokenizer:
    """The model's Hugging Face tokenizer (special tokens added, as `vllm serve` does for /v1/completions)."""

    def __init__(self, model: str):
        from transformers import AutoTokenizer

        self.tok = AutoTokenizer.from_pretrained(model)
        self.cache: dict[str, list[int]] = {}

    def ids(self, prompt: str) -> list[int]:
        if prompt not in self.cache:
            self.cache[prompt] = self.tok(prompt).input_ids
        return self.cache[prompt]
