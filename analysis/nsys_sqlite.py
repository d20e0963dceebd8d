"""Nsight Systems SQLite export (`nsys export --type sqlite`) -> pandas DataFrames.

Tables read (names as nsys writes them): StringIds, NVTX_EVENTS, CUPTI_ACTIVITY_KIND_KERNEL,
CUPTI_ACTIVITY_KIND_MEMCPY, CUPTI_ACTIVITY_KIND_RUNTIME, ENUM_CUDA_MEMCPY_OPER, PROCESSES,
ThreadNames, EXPORT_META_DATA (all optional). Read against real exports of Nsight Systems
2022.4 (schema 3.0.0, Debian 12's package: see nsys_traces/ for the committed one) and the
newer schemas' column names (2024-2025: `analysis.synthetic_nsys`).
Columns differ between nsys versions, so every query is built from the columns that
PRAGMA table_info reports: extra columns are ignored, a missing optional column reads as
NULL, and a missing table gives an empty frame with the usual columns.

Time columns: `start_ns`/`end_ns` (integers, as nsys stores them) plus float `ts_us`,
`end_us`, `dur_us`, the convention every range frame in `analysis` shares.
globalTid packs the process and thread ids: pid = (globalTid >> 24) & 0xFFFFFF,
tid = globalTid & 0xFFFFFF (see NVIDIA's "Serialized process and thread identifiers").
"""
from __future__ import annotations

import os
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

# NVTX_EVENTS.eventType values (nsys ENUM_NSYS_EVENT_TYPE).
NVTX_PUSHPOP_RANGE = 59
NVTX_STARTEND_RANGE = 60
NVTXT_PUSHPOP_RANGE = 70  # same ranges emitted through the NVTX "text" (nvtxt) path
NVTXT_STARTEND_RANGE = 71
NVTX_DOMAIN_CREATE = 75
NVTX_RANGE_TYPES = {
    NVTX_PUSHPOP_RANGE: "push_pop",
    NVTX_STARTEND_RANGE: "start_end",
    NVTXT_PUSHPOP_RANGE: "push_pop",
    NVTXT_STARTEND_RANGE: "start_end",
}

# CUpti_ActivityMemcpyKind; used when the export lacks ENUM_CUDA_MEMCPY_OPER.
MEMCPY_KIND_NAMES = {
    0: "Unknown", 1: "HtoD", 2: "DtoH", 3: "HtoA", 4: "AtoH", 5: "AtoA",
    6: "AtoD", 7: "DtoA", 8: "DtoD", 9: "HtoH", 10: "PtoP",
}

KERNEL_TABLE = "CUPTI_ACTIVITY_KIND_KERNEL"
MEMCPY_TABLE = "CUPTI_ACTIVITY_KIND_MEMCPY"
RUNTIME_TABLE = "CUPTI_ACTIVITY_KIND_RUNTIME"
NVTX_TABLE = "NVTX_EVENTS"

NVTX_COLUMNS = ["name", "range_kind", "event_type", "domain", "pid", "tid", "global_tid",
                "start_ns", "end_ns", "ts_us", "end_us", "dur_us"]
KERNEL_COLUMNS = ["name", "short_name", "device_id", "stream_id", "correlation_id", "pid",
                  "grid_x", "grid_y", "grid_z", "block_x", "block_y", "block_z",
                  "start_ns", "end_ns", "ts_us", "end_us", "dur_us"]
MEMCPY_COLUMNS = ["copy_kind", "copy_kind_name", "bytes", "device_id", "stream_id",
                  "correlation_id", "pid", "start_ns", "end_ns", "ts_us", "end_us", "dur_us"]
RUNTIME_COLUMNS = ["name", "correlation_id", "pid", "tid", "global_tid",
                   "start_ns", "end_ns", "ts_us", "end_us", "dur_us"]
LAUNCH_COLUMNS = ["launch_name", "launch_tid", "launch_start_ns", "launch_end_ns",
                  "launch_to_start_us"]


@contextmanager
def connect(path: str | os.PathLike) -> Iterator[sqlite3.Connection]:
    """Open an export read-only (a trace is evidence: never modify it)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(path)
    conn = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True)
    try:
        yield conn
    finally:
        conn.close()


@contextmanager
def _conn(src: str | os.PathLike | sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    if isinstance(src, sqlite3.Connection):
        yield src
    else:
        with connect(src) as conn:
            yield conn


def table_columns(conn: sqlite3.Connection, table: str) -> list[str]:
    """Column names of `table`, or [] when the export has no such table."""
    return [row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')]


def tables(src: str | os.PathLike | sqlite3.Connection) -> list[str]:
    with _conn(src) as conn:
        return [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]


def _col(cols: list[str], alias: str, *candidates: str, default: str = "NULL") -> str:
    """`"candidate" AS alias` for the first candidate the table has, else `default AS alias`."""
    for c in candidates:
        if c in cols:
            return f'{alias}."{c}"'
    return default


def _add_time_columns(df: pd.DataFrame) -> pd.DataFrame:
    df["ts_us"] = df["start_ns"].astype("float64") / 1e3
    df["end_us"] = df["end_ns"].astype("float64") / 1e3
    df["dur_us"] = df["end_us"] - df["ts_us"]
    return df


def _empty(columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="float64" if c.endswith("_us") else "object") for c in columns})


def _read(conn: sqlite3.Connection, sql: str, columns: list[str]) -> pd.DataFrame:
    df = pd.read_sql_query(sql, conn)
    if "start_ns" in df:
        df = _add_time_columns(df)
    return df[[c for c in columns if c in df.columns]]


def _pid_sql(expr: str) -> str:
    return f"(({expr} >> 24) & 16777215)"


def _tid_sql(expr: str) -> str:
    return f"({expr} & 16777215)"


def _string_join(cols: list[str], alias: str, id_col: str, s_alias: str, conn_has_strings: bool) -> tuple[str, str]:
    """(name expression, join clause) resolving an id column through StringIds.

    A value with no StringIds row is shown as itself, so an exporter that stored
    names inline still reads.
    """
    if id_col not in cols:
        return "NULL", ""
    raw = f'{alias}."{id_col}"'
    if not conn_has_strings:
        return f"CAST({raw} AS TEXT)", ""
    return (f"COALESCE({s_alias}.value, CAST({raw} AS TEXT))",
            f"LEFT JOIN StringIds {s_alias} ON {s_alias}.id = {raw}")


def _has_strings(conn: sqlite3.Connection) -> bool:
    return bool(table_columns(conn, "StringIds"))


def nvtx_ranges(src, *, event_types: tuple[int, ...] = tuple(NVTX_RANGE_TYPES)) -> pd.DataFrame:
    """NVTX push/pop and start/end ranges with their text (inline `text` or `textId`).

    Marks and unfinished ranges (NULL end) are left out. `domain` is the text of the
    domain's create event when the export has one.
    """
    with _conn(src) as conn:
        cols = table_columns(conn, NVTX_TABLE)
        if not cols:
            return _empty(NVTX_COLUMNS)
        strings = _has_strings(conn)
        text_inline = _col(cols, "n", "text")
        text_id, join = _string_join(cols, "n", "textId", "s", strings)
        name = f"COALESCE({text_inline}, {text_id})"
        gtid = _col(cols, "n", "globalTid")
        domain_col = _col(cols, "n", "domainId")
        domain_sql, domain_join = "NULL", ""
        if domain_col != "NULL":
            dtext_id, djoin = _string_join(cols, "d", "textId", "ds", strings)
            domain_sql = "dom.domain"
            domain_join = (
                f"LEFT JOIN (SELECT d.domainId AS domainId, MAX(COALESCE({_col(cols, 'd', 'text')}, {dtext_id})) "
                f"AS domain FROM {NVTX_TABLE} d {djoin} WHERE d.eventType = {NVTX_DOMAIN_CREATE} "
                f"GROUP BY d.domainId) dom ON dom.domainId = {domain_col}")
        types = ",".join(str(int(t)) for t in event_types)
        sql = f"""
            SELECT {name} AS name, n.eventType AS event_type, {domain_sql} AS domain,
                   {_pid_sql(gtid)} AS pid, {_tid_sql(gtid)} AS tid, {gtid} AS global_tid,
                   n.start AS start_ns, n."end" AS end_ns
            FROM {NVTX_TABLE} n {join} {domain_join}
            WHERE n.eventType IN ({types}) AND n."end" IS NOT NULL
            ORDER BY n.start"""
        df = _read(conn, sql, NVTX_COLUMNS)
        names = process_names(conn)
    df["range_kind"] = df["event_type"].map(NVTX_RANGE_TYPES)
    df["process"] = [process_label(pid, names) for pid in df["pid"]]
    return df[NVTX_COLUMNS + ["process"]]


def process_label(pid, names: dict[int, str]) -> str:
    """`VLLM::EngineCore (pid 123)` when the export names the process, else `pid 123`."""
    if pid is None or pd.isna(pid):
        return "pid ?"
    name = names.get(int(pid))
    return f"{name} (pid {int(pid)})" if name else f"pid {int(pid)}"


def process_names(src) -> dict[int, str]:
    """pid -> process name: the main thread's name (ThreadNames, where vLLM's process titles
    such as `VLLM::EngineCor` land, cut to 15 characters by the kernel), else the PROCESSES
    table's executable name. Empty when the export has neither table (e.g. the synthetic one)."""
    with _conn(src) as conn:
        names: dict[int, str] = {}
        pcols = table_columns(conn, "PROCESSES")
        if {"pid", "name"} <= set(pcols):
            for pid, name in conn.execute("SELECT pid, name FROM PROCESSES WHERE pid IS NOT NULL"):
                if name:
                    names[int(pid)] = os.path.basename(str(name))
        tcols = table_columns(conn, "ThreadNames")
        if {"nameId", "globalTid"} <= set(tcols) and _has_strings(conn):
            rows = conn.execute(f"""SELECT {_pid_sql('t.globalTid')}, {_tid_sql('t.globalTid')}, s.value
                                    FROM ThreadNames t JOIN StringIds s ON s.id = t.nameId""")
            for pid, tid, name in rows:
                if pid == tid and name:
                    names[int(pid)] = str(name)
    return names


def export_info(src) -> dict[str, str]:
    """EXPORT_META_DATA as a dict (product version, schema version, ...); {} when absent."""
    with _conn(src) as conn:
        if not table_columns(conn, "EXPORT_META_DATA"):
            return {}
        return {str(k): str(v) for k, v in conn.execute("SELECT name, value FROM EXPORT_META_DATA")}


def nvtx_range_count(src, *, event_types: tuple[int, ...] = tuple(NVTX_RANGE_TYPES)) -> int:
    """Finished NVTX ranges in the export: the check that a trace really captured its ranges."""
    with _conn(src) as conn:
        if not table_columns(conn, NVTX_TABLE):
            return 0
        types = ",".join(str(int(t)) for t in event_types)
        return int(conn.execute(f'SELECT COUNT(*) FROM {NVTX_TABLE} WHERE eventType IN ({types}) '
                                f'AND "end" IS NOT NULL').fetchone()[0])


def kernels(src) -> pd.DataFrame:
    """GPU kernels with demangled and short names resolved through StringIds."""
    with _conn(src) as conn:
        cols = table_columns(conn, KERNEL_TABLE)
        if not cols:
            return _empty(KERNEL_COLUMNS)
        strings = _has_strings(conn)
        name, join_d = _string_join(cols, "k", "demangledName", "sd", strings)
        short, join_s = _string_join(cols, "k", "shortName", "ss", strings)
        if name == "NULL":
            name = short
        dims = ", ".join(f"{_col(cols, 'k', c)} AS {a}" for c, a in [
            ("gridX", "grid_x"), ("gridY", "grid_y"), ("gridZ", "grid_z"),
            ("blockX", "block_x"), ("blockY", "block_y"), ("blockZ", "block_z")])
        sql = f"""
            SELECT {name} AS name, {short} AS short_name,
                   {_col(cols, 'k', 'deviceId')} AS device_id, {_col(cols, 'k', 'streamId')} AS stream_id,
                   {_col(cols, 'k', 'correlationId')} AS correlation_id,
                   {_pid_sql(_col(cols, 'k', 'globalPid'))} AS pid, {dims},
                   k.start AS start_ns, k."end" AS end_ns
            FROM {KERNEL_TABLE} k {join_d} {join_s}
            ORDER BY k.start"""
        return _read(conn, sql, KERNEL_COLUMNS)


def _memcpy_kind_names(conn: sqlite3.Connection) -> dict[int, str]:
    cols = table_columns(conn, "ENUM_CUDA_MEMCPY_OPER")
    names = dict(MEMCPY_KIND_NAMES)
    if "id" in cols and ("label" in cols or "name" in cols):
        label = "label" if "label" in cols else "name"
        names.update({int(i): str(v) for i, v in conn.execute(f"SELECT id, {label} FROM ENUM_CUDA_MEMCPY_OPER")})
    return names


def memcpys(src) -> pd.DataFrame:
    """Memory copies with the copy kind as a number and a name."""
    with _conn(src) as conn:
        cols = table_columns(conn, MEMCPY_TABLE)
        if not cols:
            return _empty(MEMCPY_COLUMNS)
        sql = f"""
            SELECT {_col(cols, 'm', 'copyKind')} AS copy_kind, {_col(cols, 'm', 'bytes')} AS bytes,
                   {_col(cols, 'm', 'deviceId')} AS device_id, {_col(cols, 'm', 'streamId')} AS stream_id,
                   {_col(cols, 'm', 'correlationId')} AS correlation_id,
                   {_pid_sql(_col(cols, 'm', 'globalPid'))} AS pid,
                   m.start AS start_ns, m."end" AS end_ns
            FROM {MEMCPY_TABLE} m ORDER BY m.start"""
        df = pd.read_sql_query(sql, conn)
        names = _memcpy_kind_names(conn)
    df = _add_time_columns(df)
    df["copy_kind_name"] = df["copy_kind"].map(names).fillna("Unknown")
    return df[MEMCPY_COLUMNS]


def runtime_calls(src) -> pd.DataFrame:
    """CUDA runtime API calls (cudaLaunchKernel, cudaMemcpyAsync, ...)."""
    with _conn(src) as conn:
        cols = table_columns(conn, RUNTIME_TABLE)
        if not cols:
            return _empty(RUNTIME_COLUMNS)
        name, join = _string_join(cols, "r", "nameId", "s", _has_strings(conn))
        gtid = _col(cols, "r", "globalTid")
        sql = f"""
            SELECT {name} AS name, {_col(cols, 'r', 'correlationId')} AS correlation_id,
                   {_pid_sql(gtid)} AS pid, {_tid_sql(gtid)} AS tid, {gtid} AS global_tid,
                   r.start AS start_ns, r."end" AS end_ns
            FROM {RUNTIME_TABLE} r {join} ORDER BY r.start"""
        return _read(conn, sql, RUNTIME_COLUMNS)


def kernels_with_launch(src) -> pd.DataFrame:
    """Kernels joined to the runtime call that launched them (same correlationId and process).

    Adds launch_name, launch_tid, launch_start_ns, launch_end_ns and launch_to_start_us
    (kernel start minus launch-call start: queueing plus launch latency). Kernels with
    no matching call keep NaN there.
    """
    k = kernels(src)
    r = runtime_calls(src)
    if k.empty or r.empty or r["correlation_id"].isna().all():
        for c in LAUNCH_COLUMNS:
            k[c] = pd.Series(dtype="float64" if c.endswith("_us") else "object")
        return k
    launch = r.rename(columns={"name": "launch_name", "tid": "launch_tid",
                               "start_ns": "launch_start_ns", "end_ns": "launch_end_ns"})
    keys = ["correlation_id"] + (["pid"] if k["pid"].notna().all() and launch["pid"].notna().all() else [])
    launch = launch[keys + ["launch_name", "launch_tid", "launch_start_ns", "launch_end_ns"]]
    launch = launch.drop_duplicates(subset=keys)
    out = k.merge(launch, on=keys, how="left")
    out["launch_to_start_us"] = (out["start_ns"] - out["launch_start_ns"]).astype("float64") / 1e3
    return out


# ---------------------------------------------------------------------------
# Summaries computed inside SQLite: they stay fast on exports of a gigabyte or more.

def kernel_summary(src) -> pd.DataFrame:
    """Per kernel name: count, total/mean/min/max duration (us) and share of kernel time."""
    with _conn(src) as conn:
        cols = table_columns(conn, KERNEL_TABLE)
        if not cols:
            return pd.DataFrame(columns=["name", "count", "total_us", "mean_us", "min_us", "max_us", "share"])
        key = "demangledName" if "demangledName" in cols else "shortName"
        name, join = _string_join([key], "g", key, "s", _has_strings(conn))
        sql = f"""
            SELECT {name} AS name, g.n AS count, g.total_ns / 1e3 AS total_us,
                   g.min_ns / 1e3 AS min_us, g.max_ns / 1e3 AS max_us
            FROM (SELECT "{key}", COUNT(*) AS n, SUM("end" - start) AS total_ns,
                         MIN("end" - start) AS min_ns, MAX("end" - start) AS max_ns
                  FROM {KERNEL_TABLE} GROUP BY "{key}") g {join}"""
        df = pd.read_sql_query(sql, conn)
    return _finish_summary(df)


def _finish_summary(df: pd.DataFrame) -> pd.DataFrame:
    # Rows can repeat a name (inline text in some rows, a string id in others): re-aggregate.
    df = df.groupby("name", as_index=False).agg(
        count=("count", "sum"), total_us=("total_us", "sum"), min_us=("min_us", "min"), max_us=("max_us", "max"))
    df["mean_us"] = df["total_us"] / df["count"]
    total = df["total_us"].sum()
    df["share"] = df["total_us"] / total if total else np.nan
    df = df.sort_values("total_us", ascending=False, ignore_index=True)
    return df[["name", "count", "total_us", "mean_us", "min_us", "max_us", "share"]]


def nvtx_summary(src, *, event_types: tuple[int, ...] = tuple(NVTX_RANGE_TYPES)) -> pd.DataFrame:
    """Per NVTX range name: count, total/mean/min/max duration (us), share of summed range time.

    Inclusive times (a parent counts its children); for self time use
    `analysis.phases.self_times(nvtx_ranges(path))`.
    """
    with _conn(src) as conn:
        cols = table_columns(conn, NVTX_TABLE)
        if not cols:
            return pd.DataFrame(columns=["name", "count", "total_us", "mean_us", "min_us", "max_us", "share"])
        has_text, has_id = "text" in cols, "textId" in cols
        group = ", ".join(c for c, ok in (('"text"', has_text), ('"textId"', has_id)) if ok) or "NULL"
        text_id, join = _string_join(["textId"] if has_id else [], "g", "textId", "s", _has_strings(conn))
        inline = "g.text" if has_text else "NULL"
        types = ",".join(str(int(t)) for t in event_types)
        sql = f"""
            SELECT COALESCE({inline}, {text_id}) AS name, g.n AS count, g.total_ns / 1e3 AS total_us,
                   g.min_ns / 1e3 AS min_us, g.max_ns / 1e3 AS max_us
            FROM (SELECT {group}, COUNT(*) AS n, SUM("end" - start) AS total_ns,
                         MIN("end" - start) AS min_ns, MAX("end" - start) AS max_ns
                  FROM {NVTX_TABLE} WHERE eventType IN ({types}) AND "end" IS NOT NULL
                  GROUP BY {group}) g {join}"""
        df = pd.read_sql_query(sql, conn)
    df["name"] = df["name"].fillna("(unnamed)")
    return _finish_summary(df)


def int_columns(conn: sqlite3.Connection, table: str, exprs: dict[str, str], *,
                chunk_rows: int = 4_000_000) -> dict[str, np.ndarray]:
    """Integer columns of a table as numpy arrays, fast.

    Row-by-row fetching builds a Python object per value; instead SQLite joins each
    column into one comma-separated string per chunk of rowids (group_concat, all
    columns in the same scan, so rows stay aligned) and numpy parses it
    (`bench_nsys_speed` times both ways); chunks keep each string far below SQLite's
    1 GB limit.
    NULL reads as -1.
    """
    lo, hi = conn.execute(f'SELECT MIN(rowid), MAX(rowid) FROM "{table}"').fetchone()
    parts: dict[str, list[np.ndarray]] = {k: [] for k in exprs}
    if lo is None:
        return {k: np.zeros(0, dtype=np.int64) for k in exprs}
    select = ", ".join(f"group_concat(COALESCE(CAST({e} AS INTEGER), -1))" for e in exprs.values())
    for start in range(lo, hi + 1, chunk_rows):
        row = conn.execute(f'SELECT {select} FROM "{table}" WHERE rowid >= ? AND rowid < ?',
                           (start, start + chunk_rows)).fetchone()
        for k, text in zip(exprs, row):
            if text:
                parts[k].append(np.fromstring(text, dtype=np.int64, sep=","))
    return {k: np.concatenate(v) if v else np.zeros(0, dtype=np.int64) for k, v in parts.items()}


def stream_gap_summary(src, *, quantiles: tuple[float, ...] = (0.5, 0.9, 0.99)) -> pd.DataFrame:
    """Idle gaps between consecutive kernels on each (device, stream): launch overhead.

    gap = kernel start - previous kernel end on the same stream (negative values,
    which CUPTI does not produce, count as 0). Columns: device_id, stream_id,
    kernels, busy_us, span_us, gap_total_us, gap_mean_us, gap_pNN_us, busy_fraction.
    Four integer columns come out of SQLite (see int_columns); sorting and
    differencing happen in numpy.
    """
    qcols = [f"gap_p{int(round(q * 100))}_us" for q in quantiles]
    base = ["device_id", "stream_id", "kernels", "busy_us", "span_us", "gap_total_us", "gap_mean_us"]
    with _conn(src) as conn:
        cols = table_columns(conn, KERNEL_TABLE)
        if not cols:
            return pd.DataFrame(columns=base + qcols + ["busy_fraction"])
        dev = '"deviceId"' if "deviceId" in cols else "0"
        a = int_columns(conn, KERNEL_TABLE, {"device_id": dev, "stream_id": '"streamId"',
                                             "start": "start", "end": '"end"'})
    order = np.lexsort((a["start"], a["stream_id"], a["device_id"]))
    k = pd.DataFrame({c: v[order] for c, v in a.items()})
    same = np.zeros(len(k), dtype=bool)
    same[1:] = (k["device_id"].to_numpy()[1:] == k["device_id"].to_numpy()[:-1]) & (
        k["stream_id"].to_numpy()[1:] == k["stream_id"].to_numpy()[:-1])
    gap = np.full(len(k), np.nan)
    gap[1:] = k["start"].to_numpy()[1:] - k["end"].to_numpy()[:-1]
    k["gap_ns"] = np.where(same, gap, np.nan)
    g = k.groupby(["device_id", "stream_id"])
    per_stream = pd.DataFrame({"kernels": g.size(), "busy_us": (k["end"] - k["start"]).groupby(
        [k["device_id"], k["stream_id"]]).sum() / 1e3, "span_us": (g["end"].max() - g["start"].min()) / 1e3})
    return _gap_table(k[["device_id", "stream_id", "gap_ns"]].dropna(subset=["gap_ns"]),
                      per_stream.reset_index(), quantiles, qcols)


def _gap_table(gaps: pd.DataFrame, per_stream: pd.DataFrame, quantiles, qcols) -> pd.DataFrame:
    gaps = gaps.assign(gap_us=gaps["gap_ns"].clip(lower=0).astype("float64") / 1e3)
    g = gaps.groupby(["device_id", "stream_id"])["gap_us"]
    stats = pd.DataFrame({"gap_total_us": g.sum(), "gap_mean_us": g.mean()})
    if len(gaps):
        q = g.quantile(list(quantiles)).unstack()
        q.columns = qcols
        stats = stats.join(q)
    else:
        for c in qcols:
            stats[c] = pd.Series(dtype="float64")
    out = per_stream.merge(stats.reset_index(), on=["device_id", "stream_id"], how="left")
    out["busy_fraction"] = out["busy_us"] / out["span_us"].where(out["span_us"] > 0)
    return out.sort_values(["device_id", "stream_id"], ignore_index=True)


def memcpy_summary(src) -> pd.DataFrame:
    """Per copy kind: count, bytes, total time (us) and achieved GB/s."""
    with _conn(src) as conn:
        cols = table_columns(conn, MEMCPY_TABLE)
        if not cols:
            return pd.DataFrame(columns=["copy_kind", "copy_kind_name", "count", "bytes", "total_us", "gb_per_s"])
        df = pd.read_sql_query(f"""
            SELECT {_col(cols, 'm', 'copyKind')} AS copy_kind, COUNT(*) AS count,
                   SUM({_col(cols, 'm', 'bytes', default='0')}) AS bytes, SUM("end" - start) / 1e3 AS total_us
            FROM {MEMCPY_TABLE} m GROUP BY 1 ORDER BY 1""", conn)
        names = _memcpy_kind_names(conn)
    df["copy_kind_name"] = df["copy_kind"].map(names).fillna("Unknown")
    df["gb_per_s"] = df["bytes"] / (df["total_us"] * 1e3).where(df["total_us"] > 0)
    return df[["copy_kind", "copy_kind_name", "count", "bytes", "total_us", "gb_per_s"]]


def summarize_export(src) -> dict[str, pd.DataFrame]:
    """The standard first look at an export: kernels, NVTX ranges, stream gaps, copies."""
    with _conn(src) as conn:
        return {
            "kernels_by_name": kernel_summary(conn),
            "nvtx_by_name": nvtx_summary(conn),
            "stream_gaps": stream_gap_summary(conn),
            "memcpy_by_kind": memcpy_summary(conn),
        }
