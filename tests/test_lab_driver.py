"""The one lab driver (experiments.common.lab): where a run writes, when it may rewrite the README, what
--render-only and --gpu do, and the command its result files record."""
from __future__ import annotations

import json

import pytest

from experiments.common import lab

README = "# lab\n<!-- BEGIN GENERATED r -->\nold\n<!-- END GENERATED r -->\nhand-written\n"


def make_lab(tmp_path, calls: list):
    lab_dir = tmp_path / "x1_lab"
    lab_dir.mkdir()
    (lab_dir / "README.md").write_text(README)

    def run_cpu(files, args):
        calls.append(("cpu", args.quick))
        files.write("r", {"value": 3}, config={"quick": args.quick})

    def run_gpu(files, args):
        calls.append(("gpu", args.quick))
        files.write("r", {"value": 4}, config={})

    def render(files):
        doc = files.require("r")
        files.plot_path("p").write_bytes(b"png")
        return {"r": f"value {doc['results']['value']} from `{files.rel(files.result_path('r'))}`"}

    return lab_dir, run_cpu, run_gpu, render


def test_full_run_writes_into_the_lab_and_renders_its_readme(tmp_path):
    calls = []
    lab_dir, run_cpu, _, render = make_lab(tmp_path, calls)
    assert lab.run_lab([], doc="x1: a lab", lab_dir=lab_dir, run_cpu=run_cpu, render=render) == 0
    assert calls == [("cpu", False)]
    doc = json.loads((lab_dir / "results" / "r.json").read_text())
    assert doc["results"] == {"value": 3}
    assert doc["provenance"]["command"].startswith("python -m x1_lab")  # the command that reproduces it
    assert (lab_dir / "plots" / "p.png").exists()
    text = (lab_dir / "README.md").read_text()
    assert "value 3" in text and "old" not in text and text.endswith("hand-written\n")


def test_quick_run_goes_elsewhere_and_leaves_the_readme(tmp_path):
    calls = []
    lab_dir, run_cpu, _, render = make_lab(tmp_path, calls)
    out = tmp_path / "quick"
    assert lab.run_lab(["--quick", "--out-dir", str(out)], doc="x1", lab_dir=lab_dir, run_cpu=run_cpu,
                       render=render) == 0
    assert calls == [("cpu", True)]
    assert (out / "results" / "r.json").exists() and (out / "plots" / "p.png").exists()
    assert not (lab_dir / "results").exists() and (lab_dir / "README.md").read_text() == README
    assert lab.files_for(lab.quick_args(), lab_dir).out_dir == lab.QUICK_ROOT / "x1_lab"


def test_render_only_measures_nothing_and_names_a_missing_result(tmp_path):
    calls = []
    lab_dir, run_cpu, _, render = make_lab(tmp_path, calls)
    with pytest.raises(SystemExit, match=r"no result file .*r\.json.*run `python -m x1_lab`"):
        lab.run_lab(["--render-only"], doc="x1", lab_dir=lab_dir, run_cpu=run_cpu, render=render)
    assert calls == []
    lab.run_lab([], doc="x1", lab_dir=lab_dir, run_cpu=run_cpu, render=render)
    lab.run_lab(["--render-only"], doc="x1", lab_dir=lab_dir, run_cpu=run_cpu, render=render)
    assert calls == [("cpu", False)]


def test_gpu_flag_only_where_the_lab_has_a_gpu_half(tmp_path, capsys):
    calls = []
    lab_dir, run_cpu, run_gpu, render = make_lab(tmp_path, calls)
    lab.run_lab(["--gpu", "--quick", "--out-dir", str(tmp_path / "o")], doc="x1", lab_dir=lab_dir,
                run_cpu=run_cpu, run_gpu=run_gpu, gpu_help="the GPU half", render=render)
    assert calls == [("gpu", True)]
    with pytest.raises(SystemExit):
        lab.run_lab(["--gpu"], doc="x1", lab_dir=lab_dir, run_cpu=run_cpu, render=render)
    assert "unrecognized arguments: --gpu" in capsys.readouterr().err
    with pytest.raises(ValueError, match="run_gpu and gpu_help"):
        lab.run_lab([], doc="x1", lab_dir=lab_dir, run_cpu=run_cpu, run_gpu=run_gpu, render=render)


def test_every_lab_entry_point_uses_the_driver():
    """No lab parses its own command line any more: each __main__/entry module calls run_lab."""
    from experiments.lab_docs import LABS

    for folder, modules in LABS.items():
        for module in modules:
            text = (folder / f"{module}.py").read_text()
            assert "run_lab(" in text and "ArgumentParser(" not in text, f"{folder.name}/{module}.py"
