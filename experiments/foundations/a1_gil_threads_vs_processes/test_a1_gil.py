"""a1: run the quick preset once and check what the GIL predicts, with slack for a noisy 2-core box."""
from __future__ import annotations

import json

import pytest

from experiments.foundations.a1_gil_threads_vs_processes import lab


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("a1")
    assert lab.main(["--quick", "--out-dir", str(out)]) == 0
    return out, json.loads((out / lab.RESULT_NAME).read_text())


def test_writes_result_and_plots(quick_run):
    out, doc = quick_run
    assert doc["provenance"]["machine"]["cpu_count"]
    assert (out / "a1_throughput_and_cores.png").stat().st_size > 0
    assert (out / "a1_cpu_timeline.png").stat().st_size > 0
    rows = doc["results"]["rows"]
    assert len(rows) == len(doc["config"]["workloads"]) * 2 * len(doc["config"]["workers"])


def test_python_threads_never_use_more_than_one_core(quick_run):
    # The GIL lets one thread run Python bytecode at a time, whatever the load on the machine.
    rows = quick_run[1]["results"]["rows"]
    assert lab.find(rows, "python_loop", "threads", 2)["cores_used"]["median"] < 1.3


def _run(kind: str, workers: int, workload: str) -> dict:
    ex, _ = lab.start_executor(kind, workers)
    try:
        return lab.run_once(ex, workload, lab.Config(tasks=4, scale=1.0), sample=False)
    finally:
        ex.shutdown()


def _best_of_three(ratio, probe_cores, what: str) -> None:
    """Pass if `ratio()` beats 1.25 in one of three short windows.

    Other jobs on a shared 2-core box can hold the second core for a while. If
    `probe_cores()` (own CPU seconds per wall second of two busy processes) shows we
    never got a second core, there is nothing to show: skip and say so.
    """
    attempts = []
    for _ in range(3):
        attempts.append(ratio())
        if attempts[-1] > 1.25:
            return
    cores = probe_cores()
    if cores < 1.3:
        pytest.skip(f"{what}: no free second core during the test (got {cores:.2f}); ratios {attempts}")
    raise AssertionError(f"{what}: ratios {attempts} with {cores:.2f} cores available")


def _two_process_cores() -> float:
    return _run("processes", 2, "python_loop")["cores_used"]


def test_processes_beat_threads_on_pure_python():
    _best_of_three(lambda: _run("threads", 2, "python_loop")["wall_s"] / _run("processes", 2, "python_loop")["wall_s"],
                   _two_process_cores, "processes vs threads, pure Python")


def test_threads_help_when_c_code_releases_the_gil():
    _best_of_three(lambda: _run("threads", 1, "sha256_hashlib")["wall_s"] / _run("threads", 2, "sha256_hashlib")["wall_s"],
                   _two_process_cores, "2 threads vs 1, hashlib")


def test_sleeping_threads_overlap(quick_run):
    # Waiting needs no core, so this holds even on a saturated machine.
    rows = quick_run[1]["results"]["rows"]
    assert lab.find(rows, "io_wait", "threads", 2)["speedup_vs_1"] > 1.6
    assert lab.find(rows, "io_wait", "threads", 2)["cores_used"]["median"] < 0.5


def test_help_runs():
    with pytest.raises(SystemExit) as exc:
        lab.main(["--help"])
    assert exc.value.code == 0
