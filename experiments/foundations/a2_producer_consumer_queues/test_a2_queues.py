"""a2: every submitted request ends completed or rejected, in all three concurrency models."""
from __future__ import annotations

import json
import threading
import time

import pytest

from experiments.foundations.a2_producer_consumer_queues import lab
from experiments.foundations.a2_producer_consumer_queues.scenario import Scenario, busy_wait
from experiments.foundations.a2_producer_consumer_queues.service_models import MODELS


@pytest.fixture(scope="module")
def quick_rows(tmp_path_factory):
    out = tmp_path_factory.mktemp("a2")
    assert lab.main(["--quick", "--duration", "1.0", "--out-dir", str(out)]) == 0
    assert (out / "plots" / "a2_latency_by_model.png").stat().st_size > 0
    return json.loads((out / "results" / f"{lab.RESULT}.json").read_text())["results"]["rows"]


def test_every_run_accounts_for_every_request(quick_rows):
    assert {r["model"] for r in quick_rows} == set(MODELS)
    for r in quick_rows:
        c = r["counts"]
        assert c["lost"] == 0 and c["double_counted"] == 0, r["model"]
        rejected = c["rejected_queue_full"] + c["rejected_shutting_down"] + c["rejected_drain_deadline"]
        assert c["completed"] + rejected == c["submitted"]
        # Every admitted request finished its whole stream or was rejected at the drain deadline.
        assert c["admitted"] == c["completed"] + c["rejected_drain_deadline"]
        assert c["short_streams"] == 0


def test_steady_load_is_never_cut_by_shutdown(quick_rows):
    # At 0.6 of capacity nothing should be rejected, but on 2 cores shared with other jobs a stalled worker
    # process can fill the queue for a moment (make test at load 12 saw 2 of 21 rejected as queue_full): the
    # "all completed" figure is the committed lab run's (README table). What holds on any machine: steady load
    # shuts down after the last arrival with a generous drain, so no request is cut by the shutdown.
    for r in quick_rows:
        if r["scenario"] == "steady":
            c = r["counts"]
            assert c["rejected_shutting_down"] == 0 and c["rejected_drain_deadline"] == 0, r["model"]
            assert c["completed"] == c["admitted"], r["model"]


def test_overload_pushes_back_and_shutdown_rejects_the_rest(quick_rows):
    for r in quick_rows:
        if r["scenario"] == "overload+shutdown":
            c = r["counts"]
            assert c["rejected_shutting_down"] > 0, r
            assert c["completed"] < c["submitted"]


@pytest.mark.parametrize("model", list(MODELS))
def test_drain_deadline_rejects_queued_requests_without_losing_any(model):
    # 12 requests arrive at once into a queue of 8 with one slow worker, then shutdown with a
    # 50 ms drain deadline: at most a few finish, the rest must come back as rejections.
    sc = Scenario(rate_rps=1000, duration_s=0.012, workers=1, queue_size=8, admission_timeout_s=0.001,
                  prefill_ms=20, tokens=4, token_ms=20, shutdown_at_s=0.02, drain_deadline_s=0.05)
    summary = MODELS[model](sc).summary(sc)
    c = summary["counts"]
    assert c["lost"] == 0 and c["double_counted"] == 0
    assert c["rejected_drain_deadline"] > 0
    assert c["admitted"] == c["completed"] + c["rejected_drain_deadline"]


def test_busy_wait_counts_only_cpu_the_thread_had():
    """Three threads spinning under one GIL: each is charged its full CPU time, not wall time."""
    cpu: dict[int, float] = {}

    def spin(i: int) -> None:
        start = time.thread_time()
        busy_wait(0.05)
        cpu[i] = time.thread_time() - start

    threads = [threading.Thread(target=spin, args=(i,)) for i in range(3)]
    process_cpu = time.process_time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(v >= 0.05 for v in cpu.values()), cpu
    assert time.process_time() - process_cpu >= 0.15


def test_littles_law_holds_and_one_gil_caps_python_work(quick_rows):
    for r in quick_rows:
        law, c = r["littles_law"], r["counts"]
        # Requests in the system can never be fewer than those being served at nominal speed.
        assert law["in_system"] >= 0.99 * law["in_service_nominal"], r["model"]
        if r["work_kind"] == "cpu_step" and r["model"] in ("threading", "asyncio"):
            # completed x S seconds of Python CPU under one GIL fit in the run's span: at most 1 core.
            assert law["in_service_nominal"] <= 1.0, (r["model"], r["scenario"], law)
        if r["work_kind"] == "gpu_wait":
            assert law["in_service_nominal"] <= r["scenario_config"]["workers"] * 1.01, r["model"]
        assert c["completed"] > 0


def test_help_runs():
    with pytest.raises(SystemExit) as exc:
        lab.main(["--help"])
    assert exc.value.code == 0
