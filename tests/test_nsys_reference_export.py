"""The loaders on the committed real nsys export (Nsight Systems 2022.4, CPU backend, patched engine),
and the synthetic fixture checked against it so it cannot drift from what nsys really writes."""
from __future__ import annotations

import json
import sqlite3

import pandas as pd
import pytest

from analysis import nsys_sqlite, phases, synthetic_nsys
from experiments.trace import summaries
from tools import pins

REFERENCE = pins.REPO_ROOT / "nsys_traces" / "nsys-cpu-20261208T034604Z"
EXPORT = REFERENCE / "patched.sqlite"


@pytest.fixture(scope="module")
def ranges() -> pd.DataFrame:
    return nsys_sqlite.nvtx_ranges(EXPORT)


def test_reference_is_a_real_2022_4_export_with_ranges():
    info = nsys_sqlite.export_info(EXPORT)
    assert info["EXPORT_PRODUCT_VERSION"].startswith("2022.4")
    manifest = json.loads((REFERENCE / "trace_manifest.json").read_text())
    assert manifest["recipe"] == "nsys-cpu" and manifest["variants"]["patched"]["sqlite"] == EXPORT.name
    assert nsys_sqlite.nvtx_range_count(EXPORT) == manifest["variants"]["patched"]["nvtx_ranges"] > 0
    assert (REFERENCE / "patched.nsys-rep").stat().st_size > 0 and (REFERENCE / "baseline.nsys-rep").exists()


def test_engine_core_and_worker_ranges_are_both_there(ranges):
    by_process = ranges.groupby("process")["name"].apply(set)
    engine = [p for p in by_process.index if p.startswith("VLLM::EngineCor")]
    worker = [p for p in by_process.index if p.startswith("VLLM::Worker")]
    assert len(engine) == 1 and len(worker) == 1, list(by_process.index)
    # Patch 0001's EngineCore scopes, in the EngineCore process; upstream's runner scopes in the worker.
    assert {"engine_core_step", "scheduler_step", "engine_core_execute_model_dispatch",
            "engine_core_execute_model_wait", "scheduler_update_from_output",
            "scheduler_waiting_get_computed_blocks", "block_pool_get_new_blocks"} <= by_process[engine[0]]
    assert {"gpu_model_runner: forward", "gpu_model_runner: sample"} <= by_process[worker[0]]
    assert ranges.groupby("process")["pid"].nunique().eq(1).all()


def test_phase_shares_add_up_per_process_and_match_the_committed_csv(ranges):
    shares = phases.phase_shares(ranges)
    assert shares.groupby("process")["share"].sum().round(9).eq(1).all()
    committed = pd.read_csv(REFERENCE / "phase_shares_patched.csv")
    pd.testing.assert_frame_equal(committed, shares.reset_index(drop=True), check_exact=False, rtol=1e-9)


def test_steps_nest_the_engine_phases(ranges):
    steps = phases.step_table(ranges)
    engine = steps[steps["process"].str.startswith("VLLM::EngineCor")]
    assert len(engine) >= 10
    phase_cols = [f"{p}_us" for p in phases.PHASES]
    # a step's phases (self times inside it) add up to its duration
    assert (engine[phase_cols].sum(axis=1) - engine["dur_us"]).abs().max() < 1.0
    committed = pd.read_csv(REFERENCE / "steps_patched.csv")
    assert len(committed) == len(steps)


def test_thread_table_covers_every_process(ranges):
    t = summaries.thread_table(ranges)
    assert set(t["process"]) == set(ranges["process"])
    assert ((t["covered_fraction"] > 0) & (t["covered_fraction"] <= 1)).all()


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return nsys_sqlite.table_columns(conn, table)


def test_synthetic_fixture_matches_the_real_schema(tmp_path):
    """Every table both exports hold: the real columns exist in the synthetic one (which models the
    newer, wider schema); the enum values the loaders rely on agree."""
    synthetic = synthetic_nsys.write_export(tmp_path / "s.sqlite", steps=1)["path"]
    with nsys_sqlite.connect(EXPORT) as real, nsys_sqlite.connect(synthetic) as syn:
        shared = set(nsys_sqlite.tables(real)) & set(nsys_sqlite.tables(syn))
        assert {"StringIds", "NVTX_EVENTS", "ENUM_CUDA_MEMCPY_OPER"} <= shared
        for table in shared:
            missing = set(_columns(real, table)) - set(_columns(syn, table))
            assert not missing, f"{table}: the synthetic export lacks {sorted(missing)}"
        real_labels = dict(real.execute("SELECT id, label FROM ENUM_CUDA_MEMCPY_OPER"))
        for i, label in syn.execute("SELECT id, label FROM ENUM_CUDA_MEMCPY_OPER"):
            assert real_labels[i] == label
        types = dict(real.execute("SELECT id, name FROM ENUM_NSYS_EVENT_TYPE"))
    assert types[nsys_sqlite.NVTX_PUSHPOP_RANGE] == "NvtxPushPopRange"
    assert types[nsys_sqlite.NVTX_STARTEND_RANGE] == "NvtxStartEndRange"
    assert types[nsys_sqlite.NVTX_DOMAIN_CREATE] == "NvtxDomainCreate"
    assert {nsys_sqlite.MEMCPY_KIND_NAMES[i] for i in (1, 2)} == {"HtoD", "DtoH"}
