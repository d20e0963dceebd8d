"""Train the embedded tiny Llama on this interpreter's standard-library sources.

    python -m tools.train_tiny_model [--max-minutes 8] [--max-steps 2000] [--threads 2]

Why: dummy weights fall into 2-token loops, so anything that depends on what
the model predicts (speculative-decoding acceptance, sampling, text output)
needs real weights. A few minutes of CPU training on Python source gives a
model that continues code plausibly: enough to make acceptance figures mean
something, far from a useful language model.

Shape: models/tiny-llama/config.json (4 layers, vocab 32000, same tokenizer)
but hidden 192 (3 heads of 64, MLP 512) with tied input/output embeddings:
at hidden 256 untied the model is 19.5M parameters (39 MB in bf16), over the
repo's 20 MB file cap; this one is about 7.9M parameters, 16 MB in bfloat16.
The corpus rule and its sha256 go into training_log.json, as
tools/build_tokenizer.py does.
Training stops at --max-minutes of wall time or --max-steps, whichever first.
The figures in models/tiny-llama-trained/README.md are rendered from the committed
files by write_readme (run with --replot; tests/test_train_tiny_model_readme.py checks them).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import platform
import shutil
import sysconfig
import time
from pathlib import Path

from tools.pins import REPO_ROOT

SOURCE_DIR = REPO_ROOT / "models" / "tiny-llama"
DEFAULT_OUT = REPO_ROOT / "models" / "tiny-llama-trained"
SHAPE_OVERRIDES = {"hidden_size": 192, "intermediate_size": 512, "num_attention_heads": 3,
                   "num_key_value_heads": 3, "head_dim": 64, "tie_word_embeddings": True}
README_BLOCK = "tiny-model-figures"  # the model README's generated block (experiments.common.docs markers)
REPO_FILE_CAP_MB = 20  # the repo's policy for a committed file, not a measurement
DTYPE_SHORT = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}
CORPUS_RULE = ("CPython standard library: sorted(stdlib.glob('*.py')) then sorted(stdlib.glob('*/*.py')), "
               "files taken in that order until the byte limit; the last 2% of tokens held out for eval")


def corpus_files(limit_bytes: int) -> list[Path]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    candidates = sorted(stdlib.glob("*.py")) + sorted(p for p in stdlib.glob("*/*.py")
                                                       if "test" not in p.parts[-2])
    files, total = [], 0
    for f in candidates:
        size = f.stat().st_size
        if total + size > limit_bytes:
            break
        files.append(f)
        total += size
    return files


def tokenize_corpus(files: list[Path], tokenizer_path: Path):
    import torch
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_path))
    digest = hashlib.sha256()
    texts = []
    for f in files:
        raw = f.read_bytes()
        digest.update(raw)
        texts.append(raw.decode("utf-8", errors="replace"))
    ids: list[int] = []
    for enc in tok.encode_batch(texts):
        ids.append(1)  # <s> between files, as the tokenizer adds it at generation time
        ids.extend(enc.ids)
    return torch.tensor(ids, dtype=torch.long), digest.hexdigest()


def train(out_dir: Path, *, max_minutes: float, max_steps: int, threads: int, corpus_mb: int,
          seq_len: int, batch: int, lr: float, seed: int) -> dict:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    t_start = time.perf_counter()
    files = corpus_files(corpus_mb << 20)
    data, sha = tokenize_corpus(files, SOURCE_DIR / "tokenizer.json")
    n_eval = max(seq_len * 8, len(data) // 50)
    train_ids, eval_ids = data[:-n_eval], data[-n_eval:]
    print(f"corpus: {len(files)} files, {len(data):,} tokens ({time.perf_counter() - t_start:.1f} s)", flush=True)

    cfg_dict = json.loads((SOURCE_DIR / "config.json").read_text())
    cfg_dict.update(SHAPE_OVERRIDES)
    config = LlamaConfig(**{k: v for k, v in cfg_dict.items() if k not in ("architectures", "torch_dtype")})
    model = LlamaForCausalLM(config).float()
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.1)
    warmup = 30
    planned = max_steps

    def lr_at(step: int, frac_time: float) -> float:
        # cosine on whichever budget (steps or time) is further along
        progress = max(step / planned, frac_time)
        if step < warmup:
            return lr * (step + 1) / warmup
        return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))

    gen = torch.Generator().manual_seed(seed)

    def sample_batch(ids):
        starts = torch.randint(0, len(ids) - seq_len - 1, (batch,), generator=gen)
        x = torch.stack([ids[s:s + seq_len + 1] for s in starts.tolist()])
        return x[:, :-1], x[:, 1:]

    @torch.no_grad()
    def eval_loss() -> float:
        model.eval()
        losses = []
        for s in range(0, min(len(eval_ids) - seq_len - 1, seq_len * 32), seq_len * 4):
            x = eval_ids[s:s + seq_len + 1].unsqueeze(0)
            # targets are already shifted here, so compute the loss ourselves (HF's labels= shifts again)
            logits = model(input_ids=x[:, :-1]).logits
            losses.append(torch.nn.functional.cross_entropy(logits[0], x[0, 1:]).item())
        model.train()
        return sum(losses) / len(losses)

    log = []
    model.train()
    t_train = time.perf_counter()
    budget_s = max_minutes * 60
    step = 0
    for step in range(max_steps):
        elapsed = time.perf_counter() - t_train
        if elapsed > budget_s:
            break
        for g in opt.param_groups:
            g["lr"] = lr_at(step, elapsed / budget_s)
        x, y = sample_batch(train_ids)
        # labels already shifted: pass logits through our own loss
        logits = model(input_ids=x).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        entry = {"step": step, "loss": round(loss.item(), 4), "lr": opt.param_groups[0]["lr"],
                 "elapsed_s": round(time.perf_counter() - t_train, 2)}
        if step % 100 == 0:
            entry["eval_loss"] = round(eval_loss(), 4)
            print(json.dumps(entry), flush=True)
        log.append(entry)
    steps_done = len(log)
    final_eval = eval_loss()
    train_s = time.perf_counter() - t_train

    out_dir.mkdir(parents=True, exist_ok=True)
    model.to(torch.bfloat16).save_pretrained(out_dir, safe_serialization=True)
    # the repo's config plus the shape overrides, nothing HF-version-specific
    (out_dir / "config.json").write_text(json.dumps(cfg_dict, indent=2) + "\n")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(SOURCE_DIR / name, out_dir / name)
    (out_dir / "generation_config.json").unlink(missing_ok=True)

    import torch as _t
    import transformers

    from experiments.common.provenance import provenance
    info = {
        "corpus": CORPUS_RULE, "python": platform.python_version(), "files": len(files),
        "corpus_bytes": sum(f.stat().st_size for f in files), "corpus_sha256": sha,
        "tokens": len(data), "eval_tokens": n_eval,
        "params": n_params, "saved_dtype": "bfloat16",
        "hyper": {"seq_len": seq_len, "batch": batch, "lr": lr, "warmup": warmup, "optimizer": "AdamW(0.9,0.95,wd=0.1)",
                  "schedule": "linear warmup then cosine to 0.1x over min(max_steps, max_minutes)",
                  "seed": seed, "threads": threads, "max_minutes": max_minutes, "max_steps": max_steps},
        "steps": steps_done, "train_seconds": round(train_s, 1),
        "tokens_seen": steps_done * batch * seq_len,
        "final_train_loss": log[-1]["loss"] if log else None, "final_eval_loss": round(final_eval, 4),
        "initial_loss_uniform": round(math.log(config.vocab_size), 4),
        "versions": {"torch": _t.__version__, "transformers": transformers.__version__},
        "machine": provenance()["machine"],  # CPU model, cores, load at the start: training time depends on it
        "log": log,
    }
    (out_dir / "training_log.json").write_text(json.dumps(info, indent=1) + "\n")
    plot_loss(info, out_dir / "loss_curve.png")
    if (out_dir / "README.md").exists():  # the committed directory: its figures follow the new run
        write_readme(out_dir)
    return {k: v for k, v in info.items() if k != "log"}


def readme_figures(model_dir: Path) -> str:
    """The README's figure block, from training_log.json, config.json and the size of model.safetensors."""
    from experiments.common.readme import wrap_paragraph

    info = json.loads((model_dir / "training_log.json").read_text())
    cfg = json.loads((model_dir / "config.json").read_text())
    base = json.loads((SOURCE_DIR / "config.json").read_text())
    size_mb = (model_dir / "model.safetensors").stat().st_size / 1e6
    vocab = cfg["vocab_size"]
    dtype = DTYPE_SHORT.get(info["saved_dtype"], info["saved_dtype"])

    def tied(c: dict) -> str:
        return "tied" if c.get("tie_word_embeddings") else "untied"

    intro = (f"A {cfg['num_hidden_layers']}-layer Llama (hidden {cfg['hidden_size']}, "
             f"{cfg['num_attention_heads']} heads of {cfg['head_dim']}, MLP {cfg['intermediate_size']}, "
             f"{tied(cfg)} embeddings, vocab {vocab}, {info['params'] / 1e6:.1f}M parameters, "
             f"{dtype} = {size_mb:.0f} MB) trained for {info['train_seconds'] / 60:.0f} minutes of wall time "
             f"with {info['hyper']['threads']} threads on a shared CPU over this interpreter's "
             "standard-library sources, with the repo tokenizer (`models/tiny-llama/tokenizer.json`). "
             "Rebuild: `python -m tools.train_tiny_model` (corpus rule, sha256, hyper-parameters, "
             "per-step losses: `training_log.json`; curve: `loss_curve.png`).")
    fits = "under" if size_mb < REPO_FILE_CAP_MB else "still over"
    quality = (f"After {info['steps']} steps it reaches about {info['final_eval_loss']:.1f} nats/token on "
               f"held-out stdlib code (uniform guess, ln {vocab}: {math.log(vocab):.1f}). "
               f"Hidden {cfg['hidden_size']} with {tied(cfg)} embeddings "
               f"(not the hidden-{base['hidden_size']} {tied(base)} shape of `models/tiny-llama`) "
               f"keeps the file {fits} the repo's {REPO_FILE_CAP_MB} MB cap.")
    m = info.get("machine")
    if m:
        gpu = f"GPU {m['gpu_model']}" if m.get("gpu_model") else "no GPU"
        load = "" if m.get("loadavg_1m") is None else f", 1-minute load {m['loadavg_1m']:.1f} at the start"
        where = (f"Trained on {m.get('cpu_model') or 'an unnamed CPU'} ({m.get('cpu_count')} logical CPUs, "
                 f"{gpu}{load}), as `training_log.json` records.")
    else:
        where = ("The committed `training_log.json` predates machine recording and does not name the machine "
                 "it was trained on (one of this project's x86-64 CPU VMs, no GPU); "
                 "`tools/train_tiny_model.py` now writes a `machine` entry, so the next `make tiny-model` "
                 "records it.")
    return "\n\n".join(wrap_paragraph(p, 116) for p in (intro, quality, where)) + "\n"


def write_readme(model_dir: Path, readme: Path | None = None) -> None:
    """Rewrite the figure block of model_dir/README.md (or `readme`) from model_dir's files; draws nothing."""
    from experiments.common.docs import fill_file

    readme = readme or model_dir / "README.md"
    if not fill_file(readme, {README_BLOCK: readme_figures(model_dir)}):
        raise SystemExit(f"{readme}: tiny-model-figures markers missing")


def plot_loss(info: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    log = info["log"]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([e["step"] for e in log], [e["loss"] for e in log], lw=0.8, label="train (batch)")
    ev = [e for e in log if "eval_loss" in e]
    ev_steps = [e["step"] for e in ev] + [info["steps"]]
    ev_loss = [e["eval_loss"] for e in ev] + [info["final_eval_loss"]]
    ax.plot(ev_steps, ev_loss, "o-", ms=3, label=f"held-out (final {info['final_eval_loss']:.2f})")
    ax.axhline(info["initial_loss_uniform"], color="grey", ls=":", lw=0.8, label="ln(vocab) = uniform guess")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_title(f"tiny Llama on stdlib sources: {info['steps']} steps, {info['train_seconds']:.0f} s, "
                 f"{info['hyper']['threads']} threads", fontsize=9)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-dir", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--max-minutes", type=float, default=8.0, help="wall-time cap for the training loop")
    ap.add_argument("--max-steps", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--corpus-mb", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--replot", action="store_true",
                    help="only redraw loss_curve.png and the README's figure block from the committed files")
    args = vars(ap.parse_args())
    out = args.pop("out_dir")
    if args.pop("replot"):
        plot_loss(json.loads((out / "training_log.json").read_text()), out / "loss_curve.png")
        if (out / "README.md").exists():
            write_readme(out)
        return
    print(json.dumps(train(out, **args), indent=2))


if __name__ == "__main__":
    main()
