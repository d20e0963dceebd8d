"""b4: the timeline analysis on SYNTHETIC timings built here (never a result), the CPU analogue's ordering, the skip, the GPU half."""

from __future__ import annotations

import pytest

import numpy as np

from experiments.foundations.b4_streams_async_copy import cpu_analogue as CA
from experiments.foundations.b4_streams_async_copy import streams as ST
from experiments.foundations.b4_streams_async_copy import timeline as TL
from experiments.foundations.b_common.testing import run_gpu_half
from experiments.foundations.b_common.cuda_env import torch_cuda_skip_reason


def synthetic(copy_ms: float, compute_ms: float, n: int, overlapped: bool) -> list[dict]:
    """SYNTHETIC test timeline: n chunks, serial or perfectly pipelined. Not a measurement."""
    recs, t = [], 0.0
    for i in range(n):
        if overlapped:
            c0 = i * copy_ms
            recs.append(
                {"stream": "copy", "op": f"h2d[{i}]", "kind": "copy", "start_ms": c0, "end_ms": c0 + copy_ms}
            )
            k0 = max(c0 + copy_ms, (i * compute_ms + copy_ms))
            recs.append(
                {
                    "stream": "compute",
                    "op": f"compute[{i}]",
                    "kind": "compute",
                    "start_ms": k0,
                    "end_ms": k0 + compute_ms,
                }
            )
        else:
            recs.append(
                {"stream": "default", "op": f"h2d[{i}]", "kind": "copy", "start_ms": t, "end_ms": t + copy_ms}
            )
            t += copy_ms
            recs.append(
                {
                    "stream": "default",
                    "op": f"compute[{i}]",
                    "kind": "compute",
                    "start_ms": t,
                    "end_ms": t + compute_ms,
                }
            )
            t += compute_ms
    return recs


def test_interval_helpers():
    assert TL.union([(0, 1), (0.5, 2), (3, 4), (4, 5)]) == [(0, 2), (3, 5)]
    assert TL.intersection([(0, 2), (3, 5)], [(1, 4)]) == [(1, 2), (3, 4)]
    assert TL.length([(0, 2), (3, 5)]) == 4


def test_serial_has_no_overlap():
    s = TL.summarize_timeline(synthetic(1.0, 1.0, 8, overlapped=False))
    assert s["overlap_fraction"] == 0.0 and s["makespan_ms"] == pytest.approx(16.0)
    assert s["idle_ms"] == pytest.approx(0.0)


def test_pipeline_hides_the_shorter_activity():
    s = TL.summarize_timeline(synthetic(1.0, 1.0, 8, overlapped=True))
    assert s["makespan_ms"] == pytest.approx(9.0)  # n + 1 stages
    assert s["overlap_ms"] == pytest.approx(7.0)
    assert s["overlap_fraction"] == pytest.approx(7.0 / 8.0)


def test_partial_overlap():
    recs = [
        {"stream": "a", "op": "c", "kind": "copy", "start_ms": 0, "end_ms": 4},
        {"stream": "b", "op": "k", "kind": "compute", "start_ms": 2, "end_ms": 8},
    ]
    s = TL.summarize_timeline(recs)
    assert s["overlap_ms"] == 2 and s["overlap_fraction"] == 0.5 and s["serial_ms"] == 10


def test_timeline_plot_labelled_synthetic(tmp_path):
    out = TL.plot_timelines(
        {"serial": synthetic(1, 1, 4, False), "two streams": synthetic(1, 1, 4, True)},
        tmp_path / "t.png",
        title="test",
        synthetic=True,
    )
    assert out.stat().st_size > 5_000


@pytest.fixture(scope="module")
def analogue_runs():
    """Each CPU-analogue scenario once over 4 small chunks (real threads, real timestamps)."""
    src = [np.full(1 << 18, i, dtype=np.float32) for i in range(4)]
    dst = [np.zeros(1 << 18, dtype=np.float32) for _ in range(4)]
    scratch = np.zeros(1 << 18, dtype=np.float32)
    return {name: CA.run_scenario(name, src, dst, scratch, compute_reps=2) for name in CA.SCENARIOS}, dst


def _op(run: dict, name: str) -> dict:
    return next(r for r in run["records"] if r["op"] == name)


def test_cpu_analogue_copies_really_happen_and_dependencies_hold(analogue_runs):
    runs, dst = analogue_runs
    assert [float(d[0]) for d in dst] == [0.0, 1.0, 2.0, 3.0]
    for name, run in runs.items():
        assert len([r for r in run["records"] if r["kind"] == "copy"]) == 4, name
        for i in range(4):  # compute i never starts before copy i ended (the event)
            assert _op(run, f"compute[{i}]")["start_ms"] >= _op(run, f"copy[{i}]")["end_ms"], name


def test_cpu_analogue_who_blocks_whom(analogue_runs):
    runs, _ = analogue_runs
    assert runs["one queue"]["overlap_fraction"] == 0.0
    assert {r["stream"] for r in runs["one queue"]["records"]} == {"queue"}
    assert runs["two queues, pinned"]["host_blocked_ms"] == 0.0
    pageable = runs["two queues, pageable"]
    assert {r["stream"] for r in pageable["records"] if r["kind"] == "copy"} == {"host"}
    assert pageable["host_blocked_ms"] == pytest.approx(pageable["copy_busy_ms"])
    waited = runs["two queues, wait per chunk"]
    assert waited["overlap_fraction"] == 0.0
    for i in range(3):  # the next copy is enqueued only after this chunk's compute finished
        assert _op(waited, f"copy[{i + 1}]")["start_ms"] >= _op(waited, f"compute[{i}]")["end_ms"]


def test_cpu_analogue_rejects_an_unknown_scenario():
    with pytest.raises(ValueError, match="unknown scenario"):
        CA.run_scenario("three queues", [], [], np.zeros(1), 1)


def test_pinning_faults_pages_in_once():
    p = CA.measure_pinning(4 << 20)
    assert p["first_touch_faults"] > 0 and p["second_touch_faults"] <= p["first_touch_faults"] // 100
    if "mlock_error" not in p:
        assert p["mlock_fresh_faults"] > 0 and p["touch_after_mlock_faults"] <= p["mlock_fresh_faults"] // 100


def test_without_cuda_it_skips_in_one_line(capsys, tmp_path):
    reason = torch_cuda_skip_reason()
    if reason is None:
        pytest.skip("CUDA present: the skip path is not taken here")
    assert ST.main(["--gpu", "--quick", "--out-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("SKIP") and reason in out[0]
    assert not (tmp_path / "results").exists()


@pytest.mark.gpu
def test_gpu_half(tmp_path):
    files = run_gpu_half(ST.run_gpu, ST.LAB_DIR, tmp_path, torch_cuda_skip_reason)
    sc = files.read("gpu_streams")["results"]["scenarios"]
    assert (
        sc["two streams, pinned"]["overlap_fraction"]["median"]
        > sc["one stream (pinned)"]["overlap_fraction"]["median"]
    )
