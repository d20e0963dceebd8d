"""A Llama-3-layout tokenizer stand-in for vLLM's output-processor tests (offline).

vLLM's tests/v1/engine/conftest.py builds its test vectors with the tokenizer of
meta-llama/Llama-3.2-1B, and the tests hard-code Llama 3 special-token ids (128009
<|eot_id|>). That tokenizer is not on this machine, so tools/upstream_tests.py writes
this stand-in into its offline HF cache instead. It is NOT Llama 3's vocabulary:
- a byte-level BPE trained here on the CPython standard library (the corpus of
  tools/build_tokenizer.py), split first by Llama 3's published pre-tokenizer pattern;
- ids below 128000 past the trained vocabulary are placeholders no text encodes to;
- Llama 3's 256 special tokens at its ids 128000-128255 (<|begin_of_text|> as BOS,
  <|end_of_text|> as EOS, <|eot_id|> = 128009), BOS prepended as Llama 3 does.
What the tests check (text round-trips, incremental detokenization, stop strings and
tokens, logprob decoding) depends on those properties, not on Llama 3's merges.
"""
from __future__ import annotations

import json
from pathlib import Path

from tools.build_tokenizer import corpus_files

FIRST_SPECIAL_ID = 128000
NUM_SPECIAL = 256
# Llama 3 (tiktoken cl100k-style) pre-tokenizer split.
SPLIT_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                 r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
NAMED_SPECIAL = {0: "<|begin_of_text|>", 1: "<|end_of_text|>", 2: "<|reserved_special_token_0|>",
                 3: "<|reserved_special_token_1|>", 4: "<|finetune_right_pad_id|>", 5: "<|step_id|>",
                 6: "<|start_header_id|>", 7: "<|end_header_id|>", 8: "<|eom_id|>", 9: "<|eot_id|>",
                 10: "<|python_tag|>"}


def special_tokens() -> list[str]:
    """Llama 3's special tokens in id order from 128000 (unnamed ones are reserved_special_token_N)."""
    return [NAMED_SPECIAL.get(i, f"<|reserved_special_token_{i - 9}|>") for i in range(NUM_SPECIAL)]


def write_llama3_layout_tokenizer(dest: Path, corpus_mb: int = 2, trained_vocab: int = 16000) -> int:
    """tokenizer.json + tokenizer_config.json into dest; returns the full vocabulary size (128256)."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=trained_vocab, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train([str(f) for f in corpus_files(corpus_mb << 20)], trainer)
    # placeholders fill the BPE vocabulary up to 128000 (no merge produces them)
    spec = json.loads(tok.to_str())
    vocab = spec["model"]["vocab"]
    vocab.update({f"<|standin_placeholder_{i}|>": i for i in range(len(vocab), FIRST_SPECIAL_ID)})
    tok = Tokenizer.from_str(json.dumps(spec))
    specials = special_tokens()
    tok.add_special_tokens([AddedToken(s, special=True) for s in specials])
    assert tok.token_to_id("<|eot_id|>") == FIRST_SPECIAL_ID + 9
    bos = specials[0]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, FIRST_SPECIAL_ID)])
    dest.mkdir(parents=True, exist_ok=True)
    tok.save(str(dest / "tokenizer.json"))
    (dest / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": bos, "eos_token": specials[1],
        "model_max_length": 131072, "clean_up_tokenization_spaces": False,
        "model_input_names": ["input_ids", "attention_mask"],
    }, indent=2) + "\n")
    return tok.get_vocab_size()
