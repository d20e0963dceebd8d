"""a1: the quick preset runs; what the GIL predicts is checked by who can run during one call, not by wall ratios."""
from __future__ import annotations

import concurrent.futures
import hashlib
import json
import multiprocessing
import threading
import time

import pytest

from experiments.foundations.a1_gil_threads_vs_processes import lab


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("a1")
    readme = (lab.LAB_DIR / "README.md").read_text()
    assert lab.main(["--quick", "--out-dir", str(out)]) == 0
    assert (lab.LAB_DIR / "README.md").read_text() == readme  # only a full run into the lab folder renders it
    return out, json.loads((out / "results" / f"{lab.RESULT}.json").read_text())


def test_writes_result_and_plots(quick_run):
    out, doc = quick_run
    assert doc["provenance"]["machine"]["cpu_count"]
    assert (out / "plots" / "a1_throughput_and_cores.png").stat().st_size > 0
    assert (out / "plots" / "a1_cpu_timeline.png").stat().st_size > 0
    rows = doc["results"]["rows"]
    assert len(rows) == len(doc["config"]["workloads"]) * 2 * len(doc["config"]["workers"])


def test_python_threads_never_use_more_than_one_core(quick_run):
    # The GIL lets one thread run Python bytecode at a time, whatever the load on the machine.
    rows = quick_run[1]["results"]["rows"]
    assert lab.find(rows, "python_loop", "threads", 2)["cores_used"]["median"] < 1.3


# The GIL, shown by who can run *during* one long call, not by wall-clock ratios (which flaked on busy
# cores: a second core is not guaranteed here). A ticker thread stamps the time every millisecond; a call
# that holds the GIL leaves a gap in its stamps, one that releases it (or runs elsewhere) does not. The OS
# still time-slices the ticker on a loaded machine, so only "no stamp at all for 0.3 s+" counts as blocked.
N_SUM = 30_000_000  # a single builtin sum() call: one C call that never releases the GIL (~0.3-1 s)


def _ticks_during(call) -> tuple[int, float]:
    """Stamps the ticker thread recorded while `call()` ran, and how long the call took."""
    stamps: list[float] = []
    stop = threading.Event()

    def ticker() -> None:
        while not stop.is_set():
            stamps.append(time.perf_counter())
            time.sleep(0.001)

    t = threading.Thread(target=ticker, daemon=True)
    t.start()
    time.sleep(0.05)
    start = time.perf_counter()
    call()
    end = time.perf_counter()
    stop.set()
    t.join()
    return sum(1 for x in stamps if start + 0.05 < x < end - 0.01), end - start


def _sum_in_this_process() -> None:
    sum(range(N_SUM))


def test_a_python_call_holding_the_gil_stops_other_threads():
    ticks, took = _ticks_during(_sum_in_this_process)
    assert took > 0.1, f"sum() finished in {took:.3f} s: too short to show anything"
    assert ticks == 0, f"{ticks} ticks while one C call held the GIL for {took:.2f} s"


def test_c_code_that_releases_the_gil_lets_other_threads_run():
    data = b"x" * (256 << 20)  # hashlib releases the GIL for inputs over 2 KiB
    ticks, took = _ticks_during(lambda: hashlib.sha256(data).digest())
    assert took > 0.1 and ticks > 0, f"{ticks} ticks during {took:.2f} s of hashing"


def test_a_process_has_its_own_gil():
    # The same sum() in a child process (started and warmed before the window): the parent's ticker keeps
    # running while the child computes, because the child has its own interpreter and GIL.
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as ex:
        ex.submit(sum, range(1)).result()
        ticks, took = _ticks_during(lambda: ex.submit(sum, range(N_SUM)).result())
    assert took > 0.1 and ticks > 0, f"{ticks} ticks during {took:.2f} s of a child's sum()"


def test_sleeping_threads_overlap(quick_run):
    # Waiting needs no core, so this holds even on a saturated machine.
    rows = quick_run[1]["results"]["rows"]
    assert lab.find(rows, "io_wait", "threads", 2)["speedup_vs_1"] > 1.6
    assert lab.find(rows, "io_wait", "threads", 2)["cores_used"]["median"] < 0.5


def test_help_runs():
    with pytest.raises(SystemExit) as exc:
        lab.main(["--help"])
    assert exc.value.code == 0
