"""models/tiny-llama-trained/README.md: its figures are rendered from the committed files, never typed in."""
from __future__ import annotations

import json
import re
import shutil

from tools import train_tiny_model as ttm

RERENDER = ("README figures out of date with the committed model files: "
            "run python -m tools.train_tiny_model --replot")
FIGURE = re.compile(r"\d+(\.\d+)?\s*(M parameters|MB|minutes?|nats|steps|threads|heads|layers?)"
                    r"|-layer|hidden \d|vocab \d")


def test_readme_block_is_what_replot_writes(tmp_path):
    committed = ttm.DEFAULT_OUT / "README.md"
    readme = tmp_path / "README.md"
    shutil.copy(committed, readme)  # render into a copy: the committed README is never written, nothing drawn
    ttm.write_readme(ttm.DEFAULT_OUT, readme)
    assert readme.read_text() == committed.read_text(), RERENDER


def test_no_figures_outside_the_generated_block():
    text = (ttm.DEFAULT_OUT / "README.md").read_text()
    from experiments.common import docs

    assert ttm.README_BLOCK in docs.find_blocks(text)
    outside = docs.prose_of(text)
    hit = FIGURE.search(outside)
    assert not hit, f"hand-typed figure outside the generated block: {hit}"


def test_a_recorded_machine_replaces_the_predates_note(tmp_path):
    for name in ("training_log.json", "config.json", "model.safetensors"):
        (tmp_path / name).symlink_to(ttm.DEFAULT_OUT / name)
    log = json.loads((ttm.DEFAULT_OUT / "training_log.json").read_text())
    log["machine"] = {"cpu_model": "Test CPU 9000", "cpu_count": 2, "gpu_model": None, "loadavg_1m": 1.5}
    (tmp_path / "training_log.json").unlink()
    (tmp_path / "training_log.json").write_text(json.dumps(log))
    text = ttm.readme_figures(tmp_path)
    assert "predates machine recording" not in text
    assert "Trained on Test CPU 9000 (2 logical CPUs, no GPU, 1-minute load 1.5 at the start)" in text
