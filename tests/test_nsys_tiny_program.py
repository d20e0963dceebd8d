"""A real nsys run of a tiny NVTX program with make trace's CPU recipe: its export holds the ranges."""
from __future__ import annotations

import os
import shutil
import sys
import textwrap

import pytest

from analysis import nsys_sqlite
from experiments.trace import nsys_run, recipes

pytestmark = pytest.mark.skipif(shutil.which("nsys") is None,
                                reason="nsys not installed (`make nsys` installs Debian's nsight-systems as root)")

# Both programs live about a second: nsys 2022.4 fails with `sem_open ... No such file or directory`
# now and then when its target exits within milliseconds of starting.
PROGRAM = textwrap.dedent("""
    import nvtx, time
    time.sleep(1.0)
    for i in range(3):
        with nvtx.annotate(f"step {i}"):
            with nvtx.annotate("inner"):
                time.sleep(0.005)
""")


def test_tiny_nvtx_program_under_the_cpu_recipe(tmp_path):
    prog = tmp_path / "prog.py"
    prog.write_text(PROGRAM)
    base = tmp_path / "tiny"
    cmd = recipes.nsys_command(recipes.choose("cpu"), str(base), [sys.executable, str(prog)])
    log = tmp_path / "nsys.log"
    ran = nsys_run.run_profiled(cmd, dict(os.environ), log, timeout_s=120)
    assert ran["rc"] == 0 and not ran["timed_out"], log.read_text()[-2000:]
    rep = nsys_run.import_report(base, log)
    assert rep.exists() and not base.with_name("tiny.qdstrm").exists()
    sqlite = nsys_run.export_sqlite(rep, log)
    assert nsys_run.check_nvtx(sqlite) == 6
    r = nsys_sqlite.nvtx_ranges(sqlite)
    assert sorted(r["name"]) == ["inner"] * 3 + ["step 0", "step 1", "step 2"]
    assert (r.loc[r["name"] == "inner", "dur_us"] >= 5000).all()
    assert r["pid"].nunique() == 1 and r["process"].iloc[0].endswith(f"(pid {r['pid'].iloc[0]})")
    assert not nsys_run.nsys_processes(owner_pid=ran["pid"])


def test_an_export_without_ranges_is_not_a_good_trace(tmp_path):
    prog = tmp_path / "prog.py"
    prog.write_text("import time; time.sleep(1.0)\n")
    base = tmp_path / "empty"
    log = tmp_path / "nsys.log"
    ran = nsys_run.run_profiled(recipes.nsys_command(recipes.choose("cpu"), str(base), [sys.executable, str(prog)]),
                                dict(os.environ), log, timeout_s=120)
    assert ran["rc"] == 0, log.read_text()[-2000:]
    sqlite = nsys_run.export_sqlite(nsys_run.import_report(base, log), log)
    with pytest.raises(nsys_run.TraceError, match="no NVTX ranges"):
        nsys_run.check_nvtx(sqlite)
