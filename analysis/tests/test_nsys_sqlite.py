"""The nsys loaders against schema-faithful synthetic exports (analysis.synthetic_nsys) and their variants."""
from __future__ import annotations

import numpy as np
import pytest

from analysis import gpu_activity, nsys_sqlite, phases
from analysis import synthetic_nsys as syn

STEPS = 6
RANGES_PER_STEP = sum(1 for t in syn.NVTX_TEMPLATE if t[3] in (59, 60))  # the mark has no end


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    return syn.write_export(tmp_path_factory.mktemp("nsys") / "exact.sqlite", steps=STEPS, jitter=False)["path"]


def test_nvtx_names_inline_and_via_string_ids(export):
    r = nsys_sqlite.nvtx_ranges(export)
    assert len(r) == STEPS * RANGES_PER_STEP  # marks (34) and the domain-create event (75) left out
    names = set(r["name"])
    assert {"engine_core_step", "execute_context_1(128)_generation_7(7)", "frontend: batch in flight"} <= names
    assert r["name"].notna().all()
    step = r[r["name"] == "engine_core_step"]
    assert (step["pid"] == syn.ENGINE_PID).all() and (step["tid"] == syn.ENGINE_TID).all()
    assert (step["domain"] == syn.DOMAIN_NAME).all()
    assert (step["dur_us"] == 11000).all() and np.allclose(np.diff(step["ts_us"]), syn.STEP_NS / 1e3)
    assert set(r.loc[r["name"] == "frontend: batch in flight", "range_kind"]) == {"start_end"}


def test_kernels_memcpys_runtime_and_launch_join(export):
    k = nsys_sqlite.kernels(export)
    assert len(k) == STEPS * syn.KERNELS_PER_STEP
    assert set(k["name"]) == {n for n, _ in syn.KERNEL_NAMES}
    assert set(k["short_name"]) == {s for _, s in syn.KERNEL_NAMES}
    assert (k["pid"] == syn.WORKER_PID).all() and (k["stream_id"] == syn.COMPUTE_STREAM).all()
    kl = nsys_sqlite.kernels_with_launch(export)
    assert len(kl) == len(k) and (kl["launch_name"] == "cudaLaunchKernel_v7000").all()
    assert np.allclose(kl["launch_to_start_us"], syn.LAUNCH_LEAD_US)
    assert (kl["launch_tid"] == syn.WORKER_TID).all()
    rt = nsys_sqlite.runtime_calls(export)
    assert len(rt) == STEPS * syn.RUNTIME_ROWS_PER_STEP
    assert rt["name"].value_counts()["cudaMemcpyAsync_v3020"] == 2 * STEPS
    m = nsys_sqlite.memcpys(export)
    assert sorted(m["copy_kind_name"].unique()) == ["Device-to-Host", "Host-to-Device"]  # ENUM table labels


def test_sql_summaries(export):
    ks = nsys_sqlite.kernel_summary(export)
    assert (ks["count"] == STEPS * syn.KERNELS_PER_STEP // len(syn.KERNEL_NAMES)).all()
    assert ks["share"].sum() == pytest.approx(1.0)
    ns = nsys_sqlite.nvtx_summary(export).set_index("name")
    assert ns.loc["scheduler_step", "count"] == STEPS
    assert ns.loc["scheduler_step", "total_us"] == pytest.approx(STEPS * 1000)
    assert ns.loc["execute_context_1(128)_generation_7(7)", "mean_us"] == pytest.approx(7800)
    gaps = nsys_sqlite.stream_gap_summary(export).iloc[0]
    slots = syn.kernel_slots()
    stride, dur = slots[1][1] - slots[0][1], slots[0][2]
    assert gaps["kernels"] == STEPS * syn.KERNELS_PER_STEP
    assert gaps["gap_p50_us"] == pytest.approx(stride - dur)
    assert gaps["busy_us"] == pytest.approx(STEPS * syn.KERNELS_PER_STEP * dur)
    mc = nsys_sqlite.memcpy_summary(export).set_index("copy_kind_name")
    assert mc.loc["Host-to-Device", "bytes"] == STEPS * syn.HTOD_BYTES
    assert set(nsys_sqlite.summarize_export(export)) == {"kernels_by_name", "nvtx_by_name", "stream_gaps",
                                                         "memcpy_by_kind"}


def test_sql_gap_summary_matches_the_dataframe_version(tmp_path):
    path = syn.write_export(tmp_path / "jitter.sqlite", steps=4, jitter=True)["path"]
    sql = nsys_sqlite.stream_gap_summary(path).iloc[0]
    frame = gpu_activity.gap_summary(gpu_activity.stream_gaps(nsys_sqlite.kernels(path))).iloc[0]
    for col in ("kernels", "busy_us", "span_us", "gap_total_us", "gap_p50_us", "gap_p90_us", "busy_fraction"):
        assert sql[col] == pytest.approx(frame[col]), col


def test_int_columns_chunks_stay_aligned(export):
    with nsys_sqlite.connect(export) as conn:
        a = nsys_sqlite.int_columns(conn, nsys_sqlite.KERNEL_TABLE,
                                    {"s": "start", "e": '"end"', "c": "correlationId"}, chunk_rows=7)
    k = nsys_sqlite.kernels(export).sort_values("correlation_id")
    assert np.array_equal(np.sort(a["s"]), np.sort(k["start_ns"].to_numpy()))
    order = np.argsort(a["c"])
    assert np.array_equal(a["e"][order] - a["s"][order], (k["end_ns"] - k["start_ns"]).to_numpy())


def test_copy_compute_overlap_is_exact(export):
    m, k = nsys_sqlite.memcpys(export), nsys_sqlite.kernels(export)
    out = gpu_activity.copy_compute_overlap(m, k).set_index("copy_kind_name")
    # Brute force: the HtoD copy on the copy stream vs each kernel on the compute stream.
    lo, hi = syn.HTOD_US
    expected = sum(max(0, min(hi, s + d) - max(lo, s)) for _, s, d in syn.kernel_slots())
    assert out.loc["Host-to-Device", "overlap_fraction"] == pytest.approx(expected / (hi - lo))
    assert out.loc["Device-to-Host", "overlapped_us"] == 0  # same stream as the kernels: never counted
    total = out.loc["all"]
    assert total["overlap_fraction"] == pytest.approx(STEPS * expected / (STEPS * (hi - lo + syn.DTOH_US[1]
                                                                                    - syn.DTOH_US[0])))


def test_phase_shares_from_nvtx(export):
    r = nsys_sqlite.nvtx_ranges(export)
    engine = r[r["tid"] == syn.ENGINE_TID]
    s = phases.phase_shares(engine).set_index("phase")["share"]
    # engine step 11000 us: schedule own 1000-300-300=400, lookup 300, allocate 300 (150 + 150), forward 8000,
    # sample 500, update 1000, other (step's own) 500.
    expected = {"schedule": 400, "prefix_lookup": 300, "allocate": 300, "forward": 8000, "sample": 500,
                "update": 1000, "other": 500}
    for phase, us in expected.items():
        assert s[phase] == pytest.approx(us / 11000), phase
    steps = phases.step_table(r)
    assert len(steps) == 2 * STEPS  # engine and worker steps
    assert steps.loc[steps["tid"] == syn.ENGINE_TID, "gap_before_us"].dropna().eq(1000).all()


@pytest.mark.parametrize("variant", [
    {"extra_columns": True},
    {"inline_text": True},
    {"drop_columns": {"CUPTI_ACTIVITY_KIND_KERNEL": {"shortName", "greenContextId", "gridZ"},
                      "NVTX_EVENTS": {"domainId", "jsonText", "binaryData"},
                      "CUPTI_ACTIVITY_KIND_MEMCPY": {"srcKind", "dstKind", "migrationCause"}}},
    {"drop_tables": {"ENUM_CUDA_MEMCPY_OPER", "TARGET_INFO_GPU"}},
], ids=["extra-columns", "inline-text", "missing-optional-columns", "no-enum-table"])
def test_schema_variants_read_the_same(tmp_path, export, variant):
    path = syn.write_export(tmp_path / "v.sqlite", steps=STEPS, jitter=False, **variant)["path"]
    for loader, key in ((nsys_sqlite.nvtx_ranges, ["ts_us", "name"]), (nsys_sqlite.kernels, ["ts_us"]),
                        (nsys_sqlite.runtime_calls, ["ts_us", "name"])):
        a, b = loader(export).sort_values(key, ignore_index=True), loader(path).sort_values(key, ignore_index=True)
        assert list(a.columns) == list(b.columns)
        assert a["name"].tolist() == b["name"].tolist() and np.allclose(a["dur_us"], b["dur_us"])
    kinds = nsys_sqlite.memcpys(path)["copy_kind_name"].unique()
    if "drop_tables" in variant:
        assert sorted(kinds) == ["DtoH", "HtoD"]  # CUPTI enum fallback
    assert nsys_sqlite.stream_gap_summary(path)["kernels"].iloc[0] == STEPS * syn.KERNELS_PER_STEP


def test_missing_tables_give_empty_frames_with_columns(tmp_path):
    path = syn.write_export(tmp_path / "bare.sqlite", steps=2, drop_tables={
        "CUPTI_ACTIVITY_KIND_MEMCPY", "CUPTI_ACTIVITY_KIND_RUNTIME", "NVTX_EVENTS"})["path"]
    assert nsys_sqlite.memcpys(path).empty and "copy_kind_name" in nsys_sqlite.memcpys(path)
    assert list(nsys_sqlite.nvtx_ranges(path).columns) == nsys_sqlite.NVTX_COLUMNS
    assert list(nsys_sqlite.runtime_calls(path).columns) == nsys_sqlite.RUNTIME_COLUMNS
    kl = nsys_sqlite.kernels_with_launch(path)
    assert len(kl) == 2 * syn.KERNELS_PER_STEP and kl["launch_name"].isna().all()
    assert nsys_sqlite.nvtx_summary(path).empty and nsys_sqlite.memcpy_summary(path).empty
    assert gpu_activity.copy_compute_overlap(nsys_sqlite.memcpys(path), nsys_sqlite.kernels(path)).empty
    with pytest.raises(FileNotFoundError):
        nsys_sqlite.kernels(tmp_path / "nope.sqlite")


def test_export_is_opened_read_only(export):
    with nsys_sqlite.connect(export) as conn:
        with pytest.raises(Exception):
            conn.execute("DELETE FROM StringIds")
