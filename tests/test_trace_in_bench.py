"""make bench: a failing trace step keeps the bench's status and the report; report picks traces by time.

`make bench` runs with a fake interpreter (PY=...) that plays the bench, the trace and the report,
and with apply-patches taken as done (`-o apply-patches`): no engine starts, no patches rebuilt.
"""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from analysis import report
from tools import pins

FAKE_PY = """#!/bin/bash
echo "fake $*"
case "$2" in
  experiments.bench) mkdir -p "$FAKE_OUT"; echo bench-1 > "$FAKE_OUT/LATEST"; exit $FAKE_BENCH_RC;;
  experiments.trace) echo "[trace] FAILED: fake cause: nsys export wrote nothing" >&2; exit 1;;
  analysis.report) echo "$*" > "$FAKE_OUT/report-args"; exit 0;;
esac
exit 99
"""


def make_bench(tmp_path, bench_rc: int) -> subprocess.CompletedProcess:
    fake = tmp_path / "fakepy"
    fake.write_text(FAKE_PY)
    fake.chmod(0o755)
    out = tmp_path / "bench"
    env = {**os.environ, "FAKE_OUT": str(out), "FAKE_BENCH_RC": str(bench_rc)}
    return subprocess.run(["make", "--no-print-directory", "-o", "apply-patches", "bench", f"PY={fake}",
                           f"BENCH_OUT={out}"], cwd=pins.REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=60)


def test_failing_trace_keeps_a_complete_bench_green_and_writes_the_report(tmp_path):
    r = make_bench(tmp_path, bench_rc=0)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "fake cause: nsys export wrote nothing" in r.stderr  # the trace failure's cause is printed
    assert "the trace step failed (exit 1" in r.stderr
    assert (tmp_path / "bench" / "report-args").read_text().startswith("-m analysis.report --latest")


def test_failing_bench_still_fails_make_and_skips_trace_and_report(tmp_path):
    r = make_bench(tmp_path, bench_rc=1)
    assert r.returncode != 0
    assert "experiments.trace" not in r.stdout and not (tmp_path / "bench" / "report-args").exists()


def _trace(root, name: str, finished_utc: str | None, **extra) -> None:
    d = root / name
    d.mkdir(parents=True)
    manifest = {"profiler": name.split("-")[0], "provenance": {"utc": finished_utc or "2020-01-01T00:00:00Z"},
                **extra}
    if finished_utc:
        manifest["finished_utc"] = finished_utc
    (d / "trace_manifest.json").write_text(json.dumps(manifest))


def test_report_picks_the_trace_recorded_last_not_the_last_name(tmp_path):
    # By name the torch run sorts last; by recorded time the nsys run is newer.
    _trace(tmp_path, "torch-cpu-20261125T181106Z", "2026-11-25T18:12:29Z")
    _trace(tmp_path, "nsys-cuda-20261201T000000Z", "2026-12-01T00:05:00Z")
    assert report.latest_trace(tmp_path).name == "nsys-cuda-20261201T000000Z"
    # A run id with a misleading time in its name still loses to what the manifest records.
    _trace(tmp_path, "torch-cpu-29990101T000000Z", "2026-11-30T00:00:00Z")
    assert report.latest_trace(tmp_path).name == "nsys-cuda-20261201T000000Z"
    # Unfinished runs (no manifest) are never picked.
    (tmp_path / "nsys-cpu-20270101T000000Z.partial").mkdir()
    assert report.latest_trace(tmp_path).name == "nsys-cuda-20261201T000000Z"


def test_report_falls_back_to_the_provenance_time(tmp_path):
    _trace(tmp_path, "b-old", None, provenance={"utc": "2026-01-02T00:00:00Z"})
    _trace(tmp_path, "a-new", None, provenance={"utc": "2026-03-01T00:00:00Z"})
    assert report.latest_trace(tmp_path).name == "a-new"


@pytest.mark.parametrize("content", ["not json", "{}"])
def test_a_manifest_without_time_sorts_oldest(tmp_path, content):
    _trace(tmp_path, "x-timed", "2026-01-01T00:00:00Z")
    (tmp_path / "zz-broken").mkdir()
    (tmp_path / "zz-broken" / "trace_manifest.json").write_text(content)
    assert report.latest_trace(tmp_path).name == "x-timed"
