"""A synthetic, schema-faithful Nsight Systems SQLite export: tests, examples and the speed benchmark.

Use it for what a CPU trace cannot hold (CUDA kernels, runtime launches, copies) and for size
(the speed benchmark). NVTX and process data have a real export committed:
nsys_traces/nsys-cpu-20261208T034604Z/patched.sqlite (Nsight Systems 2022.4, make trace on CPU);
tests/test_nsys_reference_export.py checks that every column of a table both exports hold exists
here too and that the enum values agree, so this file cannot drift from what nsys writes.

Tables and column names follow `nsys export --type sqlite` (2024-2025 releases):
StringIds, NVTX_EVENTS, CUPTI_ACTIVITY_KIND_KERNEL / _RUNTIME / _MEMCPY,
ENUM_CUDA_MEMCPY_OPER, TARGET_INFO_GPU. Names are StringIds references
(demangledName, shortName, nameId, textId) except NVTX text that the app did not
register, which nsys stores inline in NVTX_EVENTS.text (here: the per-step worker range).

The timeline repeats one engine step (`STEP_NS` apart), so the tests know every answer:
EngineCore thread NVTX push/pop ranges, a worker thread with the per-step range and
runner scopes, KERNELS_PER_STEP kernels on compute stream 7 each launched by a
cudaLaunchKernel call 20 us earlier, one HtoD copy on stream 13 that overlaps those
kernels and one DtoH copy on stream 7 that overlaps none. Rows are generated inside
SQLite (INSERT ... SELECT over a recursive CTE), so a gigabyte takes seconds, not Python loops.
"""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path

US = 1000  # ns per us
STEP_NS = 12_000 * US
ENGINE_PID, ENGINE_TID, FRONTEND_TID = 100, 101, 102
WORKER_PID, WORKER_TID = 200, 201
DEVICE, COMPUTE_STREAM, COPY_STREAM = 0, 7, 13
KERNELS_PER_STEP = 40
KERNEL_WINDOW_US = (2200, 7800)  # kernels fill this part of the worker's forward range
LAUNCH_LEAD_US = 20  # cudaLaunchKernel starts this long before its kernel
HTOD_US, HTOD_BYTES = (2000, 2600), 1 << 20
DTOH_US, DTOH_BYTES = (8050, 8100), 4096
RUNTIME_ROWS_PER_STEP = KERNELS_PER_STEP + 3  # + 2 cudaMemcpyAsync + 1 cudaStreamSynchronize

KERNEL_NAMES = [
    ("void at::native::vectorized_elementwise_kernel<4, at::native::GeluCUDAKernelImpl>(int, T1, T2)",
     "vectorized_elementwise_kernel"),
    ("ampere_bf16_s16816gemm_bf16_128x128_ldg8_f2f_stages_32x5_tn", "ampere_bf16_s16816gemm_bf16_128x128"),
    ("void flash::flash_fwd_splitkv_kernel<Flash_fwd_kernel_traits<128, 64, 128, 4>, true>(Flash_fwd_params)",
     "flash_fwd_splitkv_kernel"),
    ("void vllm::rms_norm_kernel<c10::BFloat16, 8, 4>(T1 *, const T1 *, const T1 *, float, int, int)",
     "rms_norm_kernel"),
    ("void vllm::rotary_embedding_kernel<c10::BFloat16, true>(const long *, T1 *, T1 *, const T1 *, int)",
     "rotary_embedding_kernel"),
    ("void vllm::act_and_mul_kernel<c10::BFloat16, &vllm::silu_kernel<c10::BFloat16>, false>(T1 *, const T1 *, int)",
     "act_and_mul_kernel"),
    ("void vllm::reshape_and_cache_flash_kernel<__nv_bfloat16, __nv_bfloat16, 0>(...)",
     "reshape_and_cache_flash_kernel"),
    ("void at::native::reduce_kernel<512, 1, at::native::ReduceOp<float, at::native::ArgMaxOps<float>>>(T3)",
     "reduce_kernel"),
]

# (name, pid, tid, eventType, start_us, end_us, domainId, inline_text) relative to the step start.
NVTX_TEMPLATE = [
    ("engine_core_step", ENGINE_PID, ENGINE_TID, 59, 0, 11000, 1, False),
    ("scheduler_step", ENGINE_PID, ENGINE_TID, 59, 100, 1100, 1, False),
    ("scheduler_waiting_get_computed_blocks", ENGINE_PID, ENGINE_TID, 59, 200, 500, 1, False),
    ("scheduler_waiting_allocate_slots", ENGINE_PID, ENGINE_TID, 59, 500, 800, 1, False),
    ("block_pool_get_new_blocks", ENGINE_PID, ENGINE_TID, 59, 550, 700, 1, False),
    ("engine_core_execute_model_dispatch", ENGINE_PID, ENGINE_TID, 59, 1200, 1700, 1, False),
    ("engine_core_execute_model_wait", ENGINE_PID, ENGINE_TID, 59, 1700, 9200, 1, False),
    ("engine_core_sample_tokens", ENGINE_PID, ENGINE_TID, 59, 9300, 9800, 1, False),
    ("scheduler_update_from_output", ENGINE_PID, ENGINE_TID, 59, 9900, 10900, 1, False),
    ("execute_context_1(128)_generation_7(7)", WORKER_PID, WORKER_TID, 59, 1300, 9100, 0, True),
    ("gpu_model_runner: preprocess", WORKER_PID, WORKER_TID, 59, 1400, 2000, 0, False),
    ("gpu_model_runner: forward", WORKER_PID, WORKER_TID, 59, 2100, 8000, 0, False),
    ("gpu_model_runner: sample", WORKER_PID, WORKER_TID, 59, 8100, 8800, 0, False),
    ("gpu_model_runner: bookkeep", WORKER_PID, WORKER_TID, 59, 8850, 9050, 0, False),
    # A start/end range on another thread, and a mark (no end) that loaders must skip.
    ("frontend: batch in flight", ENGINE_PID, FRONTEND_TID, 60, 0, 11500, 0, True),
    ("frontend: mark", ENGINE_PID, FRONTEND_TID, 34, 50, None, 0, True),
]
DOMAIN_NAME = "vllm"

SCHEMA: dict[str, list[tuple[str, str]]] = {
    "StringIds": [("id", "INTEGER NOT NULL PRIMARY KEY"), ("value", "TEXT NOT NULL")],
    "ENUM_CUDA_MEMCPY_OPER": [("id", "INTEGER NOT NULL PRIMARY KEY"), ("name", "TEXT NOT NULL"),
                              ("label", "TEXT")],
    "TARGET_INFO_GPU": [("id", "INTEGER NOT NULL"), ("name", "TEXT"), ("busLocation", "TEXT"),
                        ("totalMemory", "INTEGER"), ("smCount", "INTEGER"), ("computeMajor", "INTEGER"),
                        ("computeMinor", "INTEGER")],
    "NVTX_EVENTS": [("start", "INTEGER NOT NULL"), ("end", "INTEGER"), ("eventType", "INTEGER NOT NULL"),
                    ("rangeId", "INTEGER"), ("category", "INTEGER"), ("color", "INTEGER"), ("text", "TEXT"),
                    ("globalTid", "INTEGER"), ("endGlobalTid", "INTEGER"), ("textId", "INTEGER"),
                    ("domainId", "INTEGER"), ("uint64Value", "INTEGER"), ("int64Value", "INTEGER"),
                    ("doubleValue", "REAL"), ("uint32Value", "INTEGER"), ("int32Value", "INTEGER"),
                    ("floatValue", "REAL"), ("jsonTextId", "INTEGER"), ("jsonText", "TEXT"),
                    ("binaryData", "TEXT")],
    "CUPTI_ACTIVITY_KIND_KERNEL": [
        ("start", "INTEGER NOT NULL"), ("end", "INTEGER NOT NULL"), ("deviceId", "INTEGER NOT NULL"),
        ("contextId", "INTEGER NOT NULL"), ("greenContextId", "INTEGER"), ("streamId", "INTEGER NOT NULL"),
        ("correlationId", "INTEGER"), ("globalPid", "INTEGER"), ("demangledName", "INTEGER NOT NULL"),
        ("shortName", "INTEGER NOT NULL"), ("mangledName", "INTEGER"), ("launchType", "INTEGER"),
        ("cacheConfig", "INTEGER"), ("registersPerThread", "INTEGER NOT NULL"), ("gridX", "INTEGER NOT NULL"),
        ("gridY", "INTEGER NOT NULL"), ("gridZ", "INTEGER NOT NULL"), ("blockX", "INTEGER NOT NULL"),
        ("blockY", "INTEGER NOT NULL"), ("blockZ", "INTEGER NOT NULL"),
        ("staticSharedMemory", "INTEGER NOT NULL"), ("dynamicSharedMemory", "INTEGER NOT NULL"),
        ("localMemoryPerThread", "INTEGER NOT NULL"), ("localMemoryTotal", "INTEGER NOT NULL"),
        ("gridId", "INTEGER NOT NULL"), ("sharedMemoryExecuted", "INTEGER"), ("graphNodeId", "INTEGER"),
        ("sharedMemoryLimitConfig", "INTEGER")],
    "CUPTI_ACTIVITY_KIND_RUNTIME": [
        ("start", "INTEGER NOT NULL"), ("end", "INTEGER NOT NULL"), ("eventClass", "INTEGER NOT NULL"),
        ("globalTid", "INTEGER"), ("correlationId", "INTEGER"), ("nameId", "INTEGER NOT NULL"),
        ("returnValue", "INTEGER NOT NULL"), ("callchainId", "INTEGER")],
    "CUPTI_ACTIVITY_KIND_MEMCPY": [
        ("start", "INTEGER NOT NULL"), ("end", "INTEGER NOT NULL"), ("deviceId", "INTEGER NOT NULL"),
        ("contextId", "INTEGER NOT NULL"), ("greenContextId", "INTEGER"), ("streamId", "INTEGER NOT NULL"),
        ("correlationId", "INTEGER"), ("globalPid", "INTEGER"), ("bytes", "INTEGER NOT NULL"),
        ("copyKind", "INTEGER NOT NULL"), ("deprecatedSrcId", "INTEGER"), ("srcKind", "INTEGER"),
        ("dstKind", "INTEGER"), ("srcDeviceId", "INTEGER"), ("srcContextId", "INTEGER"),
        ("dstDeviceId", "INTEGER"), ("dstContextId", "INTEGER"), ("migrationCause", "INTEGER"),
        ("graphNodeId", "INTEGER"), ("virtualAddress", "INTEGER")],
}

MEMCPY_OPER = [(0, "CUDA_MEMCPY_OPER_UNKNOWN", "Unknown"), (1, "CUDA_MEMCPY_OPER_HTOD", "Host-to-Device"),
               (2, "CUDA_MEMCPY_OPER_DTOH", "Device-to-Host"), (8, "CUDA_MEMCPY_OPER_DTOD", "Device-to-Device"),
               (10, "CUDA_MEMCPY_OPER_PTOP", "Peer-to-Peer")]


def global_tid(pid: int, tid: int) -> int:
    """nsys's serialized thread id: pid in bits 24-47, tid in bits 0-23."""
    return (pid << 24) | tid


def global_pid(pid: int) -> int:
    return pid << 24


def kernel_slots() -> list[tuple[int, int, int]]:
    """(index, start_us, dur_us) of each kernel in a step, before jitter: 80% busy, 20% gaps."""
    lo, hi = KERNEL_WINDOW_US
    stride = (hi - lo) // KERNELS_PER_STEP
    return [(j, lo + j * stride, stride * 4 // 5) for j in range(KERNELS_PER_STEP)]


class _Strings:
    def __init__(self) -> None:
        self.ids: dict[str, int] = {}

    def __call__(self, s: str) -> int:
        return self.ids.setdefault(s, len(self.ids) + 1)


def _create(conn: sqlite3.Connection, *, extra_columns: bool, drop_tables: set[str],
            drop_columns: dict[str, set[str]]) -> dict[str, list[str]]:
    present = {}
    for table, cols in SCHEMA.items():
        if table in drop_tables:
            continue
        cols = [(c, t) for c, t in cols if c not in drop_columns.get(table, set())]
        if extra_columns:  # what a newer nsys might add
            cols = cols + [("futureMetric", "INTEGER"), ("futureLabel", "TEXT")]
        body = ", ".join(f'"{c}" {t}' for c, t in cols)
        conn.execute(f'CREATE TABLE "{table}" ({body})')
        present[table] = [c for c, _ in cols]
    return present


def _insert_select(conn, table: str, present: dict[str, list[str]], exprs: dict[str, str], source: str) -> None:
    if table not in present:
        return
    cols = [c for c in present[table] if c in exprs]
    extra = [c for c in present[table] if c.startswith("future")]
    sel = [exprs[c] for c in cols] + ["42" if c == "futureMetric" else "'x'" for c in extra]
    names = ", ".join(f'"{c}"' for c in cols + extra)
    conn.execute(f'INSERT INTO "{table}" ({names}) {source.format(select=", ".join(sel))}')


def _steps_cte(first: int, last: int) -> str:
    return (f"WITH RECURSIVE steps(i) AS (SELECT {first} UNION ALL SELECT i + 1 FROM steps WHERE i + 1 < {last}) "
            "SELECT {select} FROM steps CROSS JOIN ")


def _jitter(expr_i: str, expr_j: str, max_ns: int) -> str:
    # Deterministic pseudo-random 0..max_ns-1 (Knuth multiplicative hash), no RNG state.
    return f"((({expr_i}) * 2654435761 + ({expr_j}) * 40503) % {max_ns})"


def _fill_steps(conn, present, first: int, last: int, jitter: bool) -> None:
    cte = _steps_cte(first, last)
    t0 = "(i * {step})".format(step=STEP_NS)
    corr_base = f"(i * {RUNTIME_ROWS_PER_STEP + 1})"
    # Kernels: tmpl_kernel(j, name_id, short_id, off_ns, dur_ns, grid, block)
    kdur = f"(t.dur_ns - {_jitter('i', 't.j', 1 + 100 * US // 10) if jitter else '0'} % (t.dur_ns / 4))"
    _insert_select(conn, "CUPTI_ACTIVITY_KIND_KERNEL", present, {
        "start": f"{t0} + t.off_ns", "end": f"{t0} + t.off_ns + {kdur}", "deviceId": str(DEVICE),
        "contextId": "1", "greenContextId": "NULL", "streamId": str(COMPUTE_STREAM),
        "correlationId": f"{corr_base} + t.j + 1", "globalPid": str(global_pid(WORKER_PID)),
        "demangledName": "t.name_id", "shortName": "t.short_id", "mangledName": "t.name_id",
        "launchType": "0", "cacheConfig": "0", "registersPerThread": "64", "gridX": "t.grid",
        "gridY": "1", "gridZ": "1", "blockX": "t.block", "blockY": "1", "blockZ": "1",
        "staticSharedMemory": "0", "dynamicSharedMemory": "49152", "localMemoryPerThread": "0",
        "localMemoryTotal": "0", "gridId": f"{corr_base} + t.j + 1", "sharedMemoryExecuted": "102400",
        "graphNodeId": "NULL", "sharedMemoryLimitConfig": "1",
    }, cte + "tmpl_kernel t")
    wtid = global_tid(WORKER_PID, WORKER_TID)
    _insert_select(conn, "CUPTI_ACTIVITY_KIND_RUNTIME", present, {
        "start": f"{t0} + t.start_ns", "end": f"{t0} + t.end_ns", "eventClass": "1",
        "globalTid": str(wtid), "correlationId": f"{corr_base} + t.corr", "nameId": "t.name_id",
        "returnValue": "0", "callchainId": "NULL",
    }, cte + "tmpl_runtime t")
    _insert_select(conn, "CUPTI_ACTIVITY_KIND_MEMCPY", present, {
        "start": f"{t0} + t.start_ns", "end": f"{t0} + t.end_ns", "deviceId": str(DEVICE), "contextId": "1",
        "greenContextId": "NULL", "streamId": "t.stream", "correlationId": f"{corr_base} + t.corr",
        "globalPid": str(global_pid(WORKER_PID)), "bytes": "t.bytes", "copyKind": "t.kind",
        "deprecatedSrcId": "NULL", "srcKind": "t.src", "dstKind": "t.dst", "srcDeviceId": "NULL",
        "srcContextId": "NULL", "dstDeviceId": "NULL", "dstContextId": "NULL", "migrationCause": "NULL",
        "graphNodeId": "NULL", "virtualAddress": "NULL",
    }, cte + "tmpl_memcpy t")
    _insert_select(conn, "NVTX_EVENTS", present, {
        "start": f"{t0} + t.start_ns", "end": f"CASE WHEN t.end_ns IS NULL THEN NULL ELSE {t0} + t.end_ns END",
        "eventType": "t.event_type", "rangeId": "NULL", "category": "0", "color": "NULL",
        "text": "t.text", "globalTid": "t.gtid", "endGlobalTid": "NULL", "textId": "t.text_id",
        "domainId": "t.domain",
    }, cte + "tmpl_nvtx t")


def _templates(conn, present, strings: _Strings, *, inline_everything: bool) -> None:
    conn.execute("CREATE TEMP TABLE tmpl_kernel (j, name_id, short_id, off_ns, dur_ns, grid, block)")
    rows = [(j, strings(KERNEL_NAMES[j % len(KERNEL_NAMES)][0]), strings(KERNEL_NAMES[j % len(KERNEL_NAMES)][1]),
             start * US, dur * US, 128 + 8 * (j % 8), 128) for j, start, dur in kernel_slots()]
    conn.executemany("INSERT INTO tmpl_kernel VALUES (?,?,?,?,?,?,?)", rows)
    conn.execute("CREATE TEMP TABLE tmpl_runtime (corr, name_id, start_ns, end_ns)")
    launch = strings("cudaLaunchKernel_v7000")
    rt = [(j + 1, launch, (start - LAUNCH_LEAD_US) * US, (start - LAUNCH_LEAD_US + 5) * US)
          for j, start, _ in kernel_slots()]
    copy = strings("cudaMemcpyAsync_v3020")
    n = KERNELS_PER_STEP
    rt += [(n + 1, copy, (HTOD_US[0] - 30) * US, (HTOD_US[0] - 22) * US),
           (n + 2, copy, (DTOH_US[0] - 30) * US, (DTOH_US[0] - 22) * US),
           (n + 3, strings("cudaStreamSynchronize_v3020"), DTOH_US[0] * US, DTOH_US[1] * US + 10 * US)]
    conn.executemany("INSERT INTO tmpl_runtime VALUES (?,?,?,?)", rt)
    conn.execute("CREATE TEMP TABLE tmpl_memcpy (corr, start_ns, end_ns, stream, bytes, kind, src, dst)")
    conn.executemany("INSERT INTO tmpl_memcpy VALUES (?,?,?,?,?,?,?,?)", [
        (n + 1, HTOD_US[0] * US, HTOD_US[1] * US, COPY_STREAM, HTOD_BYTES, 1, 3, 1),
        (n + 2, DTOH_US[0] * US, DTOH_US[1] * US, COMPUTE_STREAM, DTOH_BYTES, 2, 1, 3)])
    conn.execute("CREATE TEMP TABLE tmpl_nvtx (start_ns, end_ns, event_type, text, text_id, gtid, domain)")
    conn.executemany("INSERT INTO tmpl_nvtx VALUES (?,?,?,?,?,?,?)", [
        (s * US, None if e is None else e * US, et,
         name if (inline or inline_everything) else None,
         None if (inline or inline_everything) else strings(name), global_tid(pid, tid), dom)
        for name, pid, tid, et, s, e, dom, inline in NVTX_TEMPLATE])


def write_export(path: str | os.PathLike, *, steps: int = 20, size_mb: float | None = None, jitter: bool = True,
                 extra_columns: bool = False, drop_tables: set[str] | frozenset = frozenset(),
                 drop_columns: dict[str, set[str]] | None = None, inline_text: bool = False,
                 chunk_steps: int = 5000) -> dict:
    """Write an export of `steps` engine steps, or of about `size_mb` MB (steps then ignored).

    Variants for tolerance tests: extra_columns adds unknown columns to every table,
    drop_tables / drop_columns remove tables or optional columns, inline_text stores
    every NVTX name in `text` (no textId). Returns {"path", "steps", "bytes"}.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        present = _create(conn, extra_columns=extra_columns, drop_tables=set(drop_tables),
                          drop_columns=drop_columns or {})
        strings = _Strings()
        _templates(conn, present, strings, inline_everything=inline_text)
        if "domainId" in present.get("NVTX_EVENTS", []):  # domain registration, as nsys records it
            conn.execute('INSERT INTO NVTX_EVENTS (start, eventType, text, globalTid, domainId) VALUES (?,?,?,?,?)',
                         (0, 75, DOMAIN_NAME, global_tid(ENGINE_PID, ENGINE_TID), 1))
        if "StringIds" in present:
            conn.executemany("INSERT INTO StringIds (id, value) VALUES (?, ?)",
                             [(i, s) for s, i in strings.ids.items()])
        if "ENUM_CUDA_MEMCPY_OPER" in present:
            conn.executemany("INSERT INTO ENUM_CUDA_MEMCPY_OPER (id, name, label) VALUES (?,?,?)", MEMCPY_OPER)
        if "TARGET_INFO_GPU" in present:
            conn.execute("INSERT INTO TARGET_INFO_GPU (id, name, busLocation, totalMemory, smCount, computeMajor, "
                         "computeMinor) VALUES (0, 'Synthetic GPU', '0000:00:00.0', 85899345920, 132, 9, 0)")
        done = 0
        target = None if size_mb is None else size_mb * 1e6
        n = min(chunk_steps, 200 if target is not None else steps)  # a small first chunk calibrates the size
        while n > 0:
            _fill_steps(conn, present, done, done + n, jitter)
            conn.commit()
            done += n
            if target is None:
                n = min(chunk_steps, steps - done)
                continue
            page_size, pages = (conn.execute(f"PRAGMA {p}").fetchone()[0] for p in ("page_size", "page_count"))
            size = page_size * pages
            n = 0 if size >= target else min(chunk_steps, max(1, int((target - size) / (size / done)) + 1))
    finally:
        conn.close()
    return {"path": str(path), "steps": done, "bytes": path.stat().st_size}
