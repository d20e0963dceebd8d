"""Patch machinery on temporary copies: apply, idempotence, atomic failure, stable regeneration."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import git
from tools import patches, pins


def make_series(src: Path, out: Path, edits: list[tuple[int, str]], trailers: dict[int, str] | None = None
                ) -> list[Path]:
    """Commit one edit per patch on a branch, then format the series into `out`."""
    git(src, "checkout", "-q", "-b", "work", pins.PRISTINE_REF.removeprefix("refs/"))
    f = src / "vllm" / "core" / "sched.py"
    for i, (line_no, text) in enumerate(edits, 1):
        lines = f.read_text().splitlines(True)
        lines[line_no] = text + "\n"
        f.write_text("".join(lines))
        trailer = f"\n{trailers[i]}\n" if trailers and i in trailers else ""
        git(src, "commit", "-q", "-am", f"[Test] change {i}\n\nWhy: test.\n{trailer}")
    files = patches.format_patches(src, out, branch="work")
    git(src, "checkout", "-q", "pristine")
    git(src, "branch", "-D", "work")
    return files


def tree_snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".git" not in p.relative_to(root).parts}


@pytest.fixture
def series(fake_release: Path, tmp_path: Path) -> Path:
    out = tmp_path / "patches"
    make_series(fake_release, out, [(3, "patched three"), (10, "patched ten")])
    return out


def test_follow_up_patch_is_numbered_after_the_one_it_follows(fake_release, tmp_path):
    """`Series-number: 0001b` names a follow-up patch; the others keep their numbers in order."""
    out = tmp_path / "patches"
    files = make_series(fake_release, out, [(3, "three"), (5, "five"), (10, "ten")],
                        trailers={2: "Series-number: 0001b"})
    assert [f.name.split("-", 1)[0] for f in files] == ["0001", "0001b", "0002"]
    assert patches.series_files(out) == files
    regen = tmp_path / "regen"
    patches.apply_to_source(fake_release, out)
    patches.format_patches(fake_release, regen)
    assert sorted(p.name for p in regen.iterdir()) == sorted(p.name for p in out.iterdir())


def test_apply_is_idempotent_and_builds_the_branch(fake_release, series):
    assert patches.apply_to_source(fake_release, series) is True
    log = git(fake_release, "log", "--format=%s", f"{pins.PRISTINE_REF.removeprefix('refs/')}..HEAD")
    assert log.splitlines() == ["[Test] change 2", "[Test] change 1"]
    assert git(fake_release, "rev-parse", "--abbrev-ref", "HEAD") == pins.PATCHED_BRANCH
    head = git(fake_release, "rev-parse", "HEAD")
    assert patches.apply_to_source(fake_release, series) is False  # second run: no-op
    assert git(fake_release, "rev-parse", "HEAD") == head


def test_regenerating_the_series_is_stable(fake_release, series, tmp_path):
    patches.apply_to_source(fake_release, series)
    regen = tmp_path / "regen"
    patches.format_patches(fake_release, regen)
    for f in series.iterdir():
        assert (regen / f.name).read_bytes() == f.read_bytes(), f.name


def test_broken_patch_leaves_source_untouched_and_prints_recovery(fake_release, series, capsys):
    bad = series / "0002-Test-change-2.patch"
    bad.write_text(bad.read_text().replace("-line 10", "-this line does not exist"))
    before_head = git(fake_release, "rev-parse", "HEAD")
    before = tree_snapshot(fake_release)
    with pytest.raises(SystemExit):
        patches.apply_to_source(fake_release, series)
    assert git(fake_release, "rev-parse", "HEAD") == before_head
    assert tree_snapshot(fake_release) == before
    assert pins.PATCHED_BRANCH not in git(fake_release, "branch", "--list")
    assert "To recover" in capsys.readouterr().err


def test_dirty_source_is_refused(fake_release, series):
    (fake_release / "vllm" / "core" / "sched.py").write_text("local edit\n")
    with pytest.raises(SystemExit):
        patches.apply_to_source(fake_release, series)
    assert (fake_release / "vllm" / "core" / "sched.py").read_text() == "local edit\n"


def test_package_copy_is_patched_atomically_and_original_untouched(fake_release, series, tmp_path):
    installed = tmp_path / "site" / "vllm"
    shutil.copytree(fake_release / "vllm", installed)
    original = tree_snapshot(installed)
    dest = tmp_path / "build" / "vllm-patched"
    assert patches.apply_to_package(installed, dest, series, engine_version="x") is True
    assert "patched ten" in (dest / "vllm" / "core" / "sched.py").read_text()
    assert tree_snapshot(installed) == original  # hard links were broken before patching
    assert patches.apply_to_package(installed, dest, series, engine_version="x") is False
    # A broken series: the previous build stays exactly as it was.
    built = tree_snapshot(dest)
    bad = series / "0001-Test-change-1.patch"
    bad.write_text(bad.read_text().replace("-line 3", "-no such line"))
    with pytest.raises(SystemExit):
        patches.apply_to_package(installed, dest, series, engine_version="x")
    assert tree_snapshot(dest) == built


def test_package_check_applies_the_series_in_order(fake_release, tmp_path):
    """Patch 2 edits a line patch 1 changed: checking each patch alone against
    the installed files would wrongly reject the series."""
    out = tmp_path / "stacked"
    make_series(fake_release, out, [(3, "patched three"), (3, "patched three again")])
    installed = tmp_path / "site" / "vllm"
    shutil.copytree(fake_release / "vllm", installed)
    original = tree_snapshot(installed)
    patches.check_applies_to_package(installed, tmp_path / "scratch", out)
    assert "patched three again" in (tmp_path / "scratch" / "vllm" / "core" / "sched.py").read_text()
    assert tree_snapshot(installed) == original


def test_series_names_missing_file_is_an_error(tmp_path):
    (tmp_path / "series").write_text("0001-missing.patch\n")
    with pytest.raises(SystemExit):
        patches.series_files(tmp_path)


def test_real_series_applies_to_pristine_and_installed_and_regenerates():
    """The committed series against the real 0.32.0 tree and the installed engine."""
    from tools.vllm_source import installed_package_dir

    if not (pins.SOURCE_DIR / ".git").exists():
        pytest.skip("./vllm not materialised (make source)")
    patches.check_series(pins.SOURCE_DIR, installed=installed_package_dir())
    for patch in patches.series_files():
        text = patch.read_text()
        for field in ("Why", "Metric", "Upstream status", "Drop when"):
            assert f"{field}" in text, f"{patch.name} message lacks '{field}'"
