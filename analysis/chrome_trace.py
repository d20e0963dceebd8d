"""torch.profiler Chrome traces (`export_chrome_trace`, .json or .json.gz) -> pandas DataFrames.

vLLM's torch profiler writes one file per process into its profiler directory through
`torch.profiler.tensorboard_trace_handler`, named `<worker_name>.<time_ns>.pt.trace.json[.gz]`;
the worker name (e.g. a rank suffix, or whatever a patch names the EngineCore trace) is
the file's `process` label here.

Frames hold complete ("X") events: name, cat, pid, tid, ts_us, dur_us, end_us,
file, process. `record_function` ranges have cat "user_annotation"; operators "cpu_op".
"""
from __future__ import annotations

import gzip
import json
import os
import re
from pathlib import Path

import pandas as pd

USER_ANNOTATION = "user_annotation"
CPU_OP = "cpu_op"
EVENT_COLUMNS = ["name", "cat", "pid", "tid", "ts_us", "dur_us", "end_us", "file", "process"]
TRACE_SUFFIXES = (".json", ".json.gz")
_HANDLER_SUFFIX = re.compile(r"(\.\d+)?(\.pt\.trace)?\.json(\.gz)?$")


def read_trace(path: str | os.PathLike) -> dict:
    """The trace document; gzip is detected from the file's magic bytes, not its name."""
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    doc = json.loads(raw)
    if isinstance(doc, list):  # the bare-array form of the Chrome trace format
        doc = {"traceEvents": doc}
    return doc


def process_label(path: str | os.PathLike) -> str:
    """`rank0.1700000000000000000.pt.trace.json.gz` -> `rank0`."""
    return _HANDLER_SUFFIX.sub("", Path(path).name) or Path(path).name


def process_names(doc: dict) -> dict:
    """pid -> name from the trace's `process_name` metadata events."""
    return {e.get("pid"): (e.get("args") or {}).get("name")
            for e in doc.get("traceEvents", []) if e.get("ph") == "M" and e.get("name") == "process_name"}


def events(doc_or_path: dict | str | os.PathLike, *, categories: tuple[str, ...] | None = None,
           label: str | None = None) -> pd.DataFrame:
    """Complete ("X") events of one trace, optionally only some categories.

    `process` is `label` (default: from the file name); when one file holds several
    numeric pids, the pid's process name is appended so they stay apart.
    """
    if isinstance(doc_or_path, dict):
        doc, file = doc_or_path, label or ""
    else:
        doc, file = read_trace(doc_or_path), Path(doc_or_path).name
        label = label or process_label(doc_or_path)
    raw = pd.DataFrame(doc.get("traceEvents", []), columns=["ph", "cat", "name", "pid", "tid", "ts", "dur"])
    raw = raw[raw["ph"] == "X"]
    if categories is not None:
        raw = raw[raw["cat"].isin(categories)]
    df = pd.DataFrame({
        "name": raw["name"].astype("string"),
        "cat": raw["cat"].astype("string"),
        # torch writes string pids for its own pseudo-processes ("Spans"); keep numbers numeric.
        "pid": pd.to_numeric(raw["pid"], errors="coerce").astype("Int64"),
        "tid": pd.to_numeric(raw["tid"], errors="coerce").astype("Int64"),
        "ts_us": pd.to_numeric(raw["ts"], errors="coerce").astype("float64"),
        "dur_us": pd.to_numeric(raw["dur"], errors="coerce").fillna(0.0).astype("float64"),
    })
    df["end_us"] = df["ts_us"] + df["dur_us"]
    df["file"] = file
    df["process"] = label or file
    pids = df["pid"].dropna().unique()
    if len(pids) > 1:
        names = process_names(doc)
        suffix = df["pid"].map(lambda p: names.get(p) or str(p), na_action="ignore")
        df["process"] = df["process"] + " [" + suffix.fillna("?").astype("string") + "]"
    return df[EVENT_COLUMNS].reset_index(drop=True)


def user_annotations(src) -> pd.DataFrame:
    """`record_function` ranges (vLLM's profiling scopes)."""
    return events(src, categories=(USER_ANNOTATION,))


def cpu_ops(src) -> pd.DataFrame:
    """Operator events (aten::*, _C::*)."""
    return events(src, categories=(CPU_OP,))


def trace_files(directory: str | os.PathLike) -> list[Path]:
    """Trace files in a profiler directory (not recursive), sorted by name."""
    d = Path(directory)
    if not d.is_dir():
        raise NotADirectoryError(d)
    return sorted(p for p in d.iterdir() if p.is_file() and p.name.endswith(TRACE_SUFFIXES))


def load_profiler_dir(directory: str | os.PathLike, *,
                      categories: tuple[str, ...] | None = (USER_ANNOTATION, CPU_OP)) -> pd.DataFrame:
    """Events of every trace file in a profiler directory, each tagged with file and process.

    Two files with the same process label (two profiling sessions of one worker) get
    the file's timestamp suffix appended so their ranges are not mixed.
    """
    files = trace_files(directory)
    if not files:
        return pd.DataFrame({c: pd.Series(dtype="float64" if c.endswith("_us") else "object")
                             for c in EVENT_COLUMNS})
    labels = [process_label(f) for f in files]
    dup = {lab for lab in labels if labels.count(lab) > 1}
    labels = [f"{lab} ({f.name[len(lab):].split('.')[1]})" if lab in dup else lab
              for lab, f in zip(labels, files)]
    frames = [events(f, categories=categories, label=lab) for f, lab in zip(files, labels)]
    return pd.concat(frames, ignore_index=True)


def op_summary(ops: pd.DataFrame, *, by: tuple[str, ...] = ("process",)) -> pd.DataFrame:
    """Per operator name: count, inclusive total_us, self_us and self_share.

    self_share is the op's self time (its time minus nested ops: aten::linear minus
    its aten::addmm) over the process's total top-level op time, so it adds up to 1
    per process.
    """
    from analysis import phases  # local: phases imports nothing from here

    keys = [c for c in by if c in ops.columns]
    nested = phases.self_times(ops)
    top = nested[nested["depth"] == 0]
    denom = top.groupby(keys)["dur_us"].sum().rename("top_total_us") if keys else top["dur_us"].sum()
    out = nested.groupby(keys + ["name"], as_index=False).agg(
        count=("dur_us", "size"), total_us=("dur_us", "sum"), self_us=("self_us", "sum"))
    if keys:
        out = out.merge(denom.reset_index(), on=keys)
        out["self_share"] = out["self_us"] / out["top_total_us"]
        out = out.drop(columns="top_total_us")
    else:
        out["self_share"] = out["self_us"] / denom
    return out.sort_values(keys + ["self_us"], ascending=[True] * len(keys) + [False], ignore_index=True)
