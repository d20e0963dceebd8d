"""a3: what the kernel counters say about read() vs mmap on a small generated safetensors file."""
from __future__ import annotations

import json

import pytest

from experiments.foundations.a3_read_vs_mmap import lab

MIB = 1 << 20


@pytest.fixture(scope="module")
def quick_doc(tmp_path_factory):
    out = tmp_path_factory.mktemp("a3")
    assert lab.main(["--quick", "--out-dir", str(out)]) == 0
    assert (out / "plots" / "a3_read_vs_mmap.png").stat().st_size > 0
    return json.loads((out / "results" / f"{lab.RESULT}.json").read_text())["results"]


def test_all_loaders_agree(quick_doc):
    # lab.check_checksums raised during the run otherwise; here check every loader ran in both states.
    methods = {r["method"] for r in quick_doc["rows"]}
    assert {"read_full", "mmap_full", "mmap_partial", "numpy_memmap_partial", "safetensors_lazy_partial"} <= methods
    assert {r["state"] for r in quick_doc["rows"]} == {"cold", "warm"}


def test_mmap_faults_fewer_pages_for_part_of_the_file(quick_doc):
    rows = quick_doc["rows"]
    full = lab.find(rows, "mmap_full", "warm")
    part = lab.find(rows, "mmap_partial", "warm")
    faults = lambda r: r["minor_faults"] + r["major_faults"]  # noqa: E731
    assert faults(part) < 0.5 * faults(full)
    assert part["rss_file"] < 0.5 * full["rss_file"]


def test_read_copies_into_private_memory_and_mmap_does_not(quick_doc):
    size = quick_doc["file_bytes"]
    rows = quick_doc["rows"]
    read, mm = lab.find(rows, "read_full", "warm"), lab.find(rows, "mmap_full", "warm")
    assert read["rchar"] >= 0.99 * size and mm["rchar"] < 0.01 * size
    assert read["rss_anon"] >= 0.9 * size and mm["rss_anon"] < 0.1 * size
    assert mm["rss_file"] >= 0.9 * size


def test_cold_cache_reads_from_disk(quick_doc):
    if not quick_doc["cold_drop_works"]:
        pytest.skip(f"posix_fadvise did not evict the file here ({quick_doc['cached_after_drop']:.0%} cached)")
    rows = quick_doc["rows"]
    size = quick_doc["file_bytes"]
    assert lab.find(rows, "read_full", "cold")["read_bytes"] >= 0.9 * size
    assert lab.find(rows, "read_full", "warm")["read_bytes"] < 0.1 * size
    # Without read-around the kernel reads only the pages that were touched.
    random = lab.find(rows, "mmap_partial_madv_random", "cold")
    assert random["read_bytes"] <= 1.2 * random["tensor_bytes"]


def test_two_processes_share_one_mapping(quick_doc):
    by_how = {s["how"]: s for s in quick_doc["sharing"]}
    size = quick_doc["file_bytes"]
    assert by_how["read"]["pss_sum"] >= 1.8 * size      # two private copies
    assert by_how["mmap"]["pss_sum"] <= 1.25 * size     # one set of page-cache pages, half charged to each
    assert by_how["mmap"]["pss_sum"] < 0.7 * by_how["read"]["pss_sum"]


def test_help_runs():
    with pytest.raises(SystemExit) as exc:
        lab.main(["--help"])
    assert exc.value.code == 0
