"""A screenshot of nsys-ui's timeline for b5's committed report, on a headless machine (Xvfb + Mesa).

    python -m experiments.foundations.b5_launch_overhead_trace.nsys_ui_screenshot [--wait 40]

Starts Xvfb on a display of its own, opens `results/cpu_nsys_forwards.nsys-rep` in nsys-ui, answers
the two first-start dialogs ("Help Improve NVIDIA Software": No; options preset: CPU rows on top,
OK) by clicking where they appear on a 1600x1000 screen, waits for the report to load, selects the
stretch holding the NVTX forward ranges on the timeline and zooms into it (`z`), grabs the screen
(xwd + ImageMagick) into `plots/cpu_nsys_ui_screenshot.png`, then ends nsys-ui and Xvfb by pid. Needs `NSYS_UI=1 make nsys`
(xvfb, xdotool, x11-apps, imagemagick). Prints why and exits 3 when a tool is missing.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from experiments.trace import nsys_run

LAB_DIR = Path(__file__).resolve().parent
REPORT = LAB_DIR / "results" / "cpu_nsys_forwards.nsys-rep"
OUT = LAB_DIR / "plots" / "cpu_nsys_ui_screenshot.png"
TOOLS = ("Xvfb", "nsys-ui", "xdotool", "xwd", "convert")
SCREEN = "1600x1000x24"


def _start(cmd: list[str], env: dict, log) -> subprocess.Popen:
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)


# Where things are on a 1600x1000 screen with nsys-ui 2022.4 and no window manager (found by
# screenshots): the first-start dialogs' buttons, and the timeline's row area (x of time 0 and of
# the report's end).
NO_BUTTON = (840, 446)  # "Help Improve NVIDIA Software": No
CPU_ROWS_RADIO, PRESET_OK = (558, 450), (902, 580)  # "Please select an options preset"
TIMELINE_X0, TIMELINE_X1, TIMELINE_Y = 531, 1335, 300
WINDOW_CROP = "1365x780+0+0"


def _xdotool(env: dict, *args: str) -> None:
    subprocess.run(["xdotool", *args], env=env, check=True, timeout=30)


def zoom_window(sqlite: Path, prefix: str = "") -> tuple[float, float]:
    """(start, end) in seconds on nsys-ui's ruler of every NVTX range (or those named prefix...), 25% margin."""
    import sqlite3

    from analysis import nsys_sqlite

    r = nsys_sqlite.nvtx_ranges(sqlite)
    r = r[r["name"].str.startswith(prefix)] if prefix else r
    with sqlite3.connect(sqlite) as conn:
        start_ns, = conn.execute("SELECT startTime FROM ANALYSIS_DETAILS").fetchone()
    a, b = (r["start_ns"].min() - start_ns) / 1e9, (r["end_ns"].max() - start_ns) / 1e9
    pad = 0.25 * (b - a)  # the ruler mapping below is approximate: keep the ranges inside
    return a - pad, b + pad


def screenshot(wait_s: float, out: Path = OUT, report: Path = REPORT) -> Path:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        raise SystemExit(3) from RuntimeError(f"missing {', '.join(missing)} (NSYS_UI=1 make nsys installs them)")
    display = f":{90 + os.getpid() % 100}"
    env = {**os.environ, "DISPLAY": display}
    started = []
    with tempfile.TemporaryDirectory() as tmp, open(Path(tmp) / "ui.log", "ab") as log:
        sqlite = nsys_run.export_sqlite(Path(shutil.copy(report, tmp)), Path(tmp) / "export.log")
        with nsys_run.nsys_sqlite.connect(sqlite) as conn:
            duration_s = conn.execute("SELECT duration FROM ANALYSIS_DETAILS").fetchone()[0] / 1e9
        t_a, t_b = zoom_window(sqlite)
        x = lambda t: str(round(TIMELINE_X0 + (TIMELINE_X1 - TIMELINE_X0) * t / duration_s))  # noqa: E731
        try:
            started.append(_start(["Xvfb", display, "-screen", "0", SCREEN, "-nolisten", "tcp"], env, log))
            time.sleep(2)
            started.append(_start(["nsys-ui", str(report)], env, log))
            time.sleep(25)  # the first dialog appears once the UI is up
            _xdotool(env, "mousemove", *map(str, NO_BUTTON), "click", "1")
            time.sleep(5)
            _xdotool(env, "mousemove", *map(str, CPU_ROWS_RADIO), "click", "1")
            time.sleep(1)
            _xdotool(env, "mousemove", *map(str, PRESET_OK), "click", "1")
            time.sleep(wait_s)  # the report loads
            y = str(TIMELINE_Y)
            _xdotool(env, "mousemove", x(t_a), y, "mousedown", "1", "mousemove", x((t_a + t_b) / 2), y,
                     "mousemove", x(t_b), y, "mouseup", "1")
            time.sleep(2)
            _xdotool(env, "key", "z")  # zoom into the selection
            time.sleep(8)
            xwd = Path(tmp) / "screen.xwd"
            subprocess.run(["xwd", "-root", "-silent", "-out", str(xwd)], env=env, check=True, timeout=60)
            out.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(["convert", str(xwd), "-crop", WINDOW_CROP, "+repage", str(out)], check=True,
                           timeout=60)
        finally:
            for p in reversed(started):
                if p.poll() is None:
                    nsys_run.kill_processes(nsys_run.psutil.Process(p.pid).children(recursive=True))
                    p.terminate()
                    try:
                        p.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        p.kill()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wait", type=float, default=40.0, help="seconds to let the report load after the dialogs")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    try:
        print(f"wrote {screenshot(args.wait, args.out)}")
    except SystemExit as exc:
        print(f"SKIP nsys-ui screenshot: {exc.__cause__}")
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
