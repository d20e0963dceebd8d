"""Train the embedded model's byte-level BPE tokenizer offline.

The corpus is this interpreter's standard-library sources (always present, no
download); the corpus hash and Python version are written next to the
tokenizer so a rebuild on another machine can be compared. vocab_size matches
the model config: with a smaller vocab, dummy weights sample ids the tokenizer
cannot decode and text comes out empty.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sysconfig
from pathlib import Path

from tools.pins import REPO_ROOT

DEFAULT_MODEL_DIR = REPO_ROOT / "models" / "tiny-llama"
SPECIAL = ["<unk>", "<s>", "</s>"]  # ids 0, 1, 2 = config's unk/bos/eos


def corpus_files(limit_bytes: int) -> list[Path]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files, total = [], 0
    for f in sorted(stdlib.glob("*.py")):
        size = f.stat().st_size
        if total + size > limit_bytes:
            break
        files.append(f)
        total += size
    return files


def build(model_dir: Path, corpus_mb: int = 4) -> dict:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    config = json.loads((model_dir / "config.json").read_text())
    vocab = int(config["vocab_size"])
    files = corpus_files(corpus_mb << 20)
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.read_bytes())
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=SPECIAL, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train([str(f) for f in files], trainer)
    tok.save(str(model_dir / "tokenizer.json"))
    (model_dir / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<unk>",
        "model_max_length": config["max_position_embeddings"], "add_bos_token": True,
    }, indent=2) + "\n")
    info = {"corpus": "CPython standard library *.py (sorted, first files up to the size limit)",
            "python": platform.python_version(), "files": len(files),
            "corpus_bytes": sum(f.stat().st_size for f in files),
            "corpus_sha256": digest.hexdigest(), "vocab_size": tok.get_vocab_size()}
    (model_dir / "tokenizer_build.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR)
    ap.add_argument("--corpus-mb", type=int, default=4)
    print(json.dumps(build(**vars(ap.parse_args())), indent=2))


if __name__ == "__main__":
    main()
