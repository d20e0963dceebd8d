"""The Chrome-trace loader against real torch.profiler output written on CPU (conftest.torch_traces)."""
from __future__ import annotations

import gzip
import json

import pytest

from analysis import chrome_trace, examples


def _names(plan) -> set[str]:
    name, _, children = plan
    return {name}.union(*(_names(c) for c in children))


def test_profiler_dir_has_one_labelled_process_per_file(torch_traces):
    files = chrome_trace.trace_files(torch_traces["dir"])
    assert [f.name.endswith(".pt.trace.json.gz") for f in files] == [True, False]  # EngineCore gz, worker plain
    ev = chrome_trace.load_profiler_dir(torch_traces["dir"])
    assert set(ev["process"]) == set(examples.EXAMPLE_PROCESSES)
    assert list(ev.columns) == chrome_trace.EVENT_COLUMNS
    for label, plan in examples.EXAMPLE_PROCESSES.items():
        ua = ev[(ev["process"] == label) & (ev["cat"] == chrome_trace.USER_ANNOTATION)]
        assert set(ua["name"]) == _names(plan)
        assert len(ua) == 4 * len(_names(plan))  # 4 steps
        assert (ua["dur_us"] > 0).all() and (ua["end_us"] > ua["ts_us"]).all()
    ops = ev[ev["cat"] == chrome_trace.CPU_OP]
    assert "aten::mm" in set(ops["name"]) and set(ops["process"]) == {"dp0_pp0_tp0_rank0"}


def test_single_file_loaders_and_op_summary(torch_traces):
    worker = next(f for f in chrome_trace.trace_files(torch_traces["dir"]) if f.name.startswith("dp0"))
    ua = chrome_trace.user_annotations(worker)
    assert set(ua["cat"]) == {chrome_trace.USER_ANNOTATION} and set(ua["process"]) == {"dp0_pp0_tp0_rank0"}
    ops = chrome_trace.cpu_ops(worker)
    summary = chrome_trace.op_summary(ops)
    # exactly 1 for perfectly nested ops; real traces have sub-microsecond sibling overlaps,
    # which self_time clips (never negative), so allow a few parts per million
    assert summary["self_share"].sum() == pytest.approx(1.0, abs=1e-4)
    assert summary.iloc[0]["name"] == "aten::mm"


def test_labels_gzip_detection_and_bare_array_form(tmp_path):
    assert chrome_trace.process_label("dp0_pp0_tp0_rank0.1790000000000000000.pt.trace.json.gz") == "dp0_pp0_tp0_rank0"
    assert chrome_trace.process_label("plain.json") == "plain"
    events = [{"ph": "X", "cat": "user_annotation", "name": "a", "pid": 1, "tid": 1, "ts": 10.5, "dur": 2},
              {"ph": "X", "cat": "user_annotation", "name": "b", "pid": "Spans", "tid": 1, "ts": 11, "dur": 1},
              {"ph": "M", "name": "process_name", "pid": 1, "args": {"name": "python"}}]
    (tmp_path / "odd.json").write_bytes(gzip.compress(json.dumps(events).encode()))  # gz content, .json name
    df = chrome_trace.user_annotations(tmp_path / "odd.json")
    assert df["name"].tolist() == ["a", "b"] and df["end_us"].tolist() == [12.5, 12.0]
    assert df["pid"].isna().tolist() == [False, True]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert chrome_trace.load_profiler_dir(empty).empty
