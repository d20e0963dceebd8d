"""Shared fixtures for the spine's tests."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tools import pins

GIT_ID = ["-c", "user.name=t", "-c", "user.email=t@example.invalid", "-c", "commit.gpgsign=false"]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *GIT_ID, *args], check=True, text=True,
                          capture_output=True).stdout.strip()


def make_fake_release(root: Path, version: str = pins.VLLM_VERSION) -> Path:
    """A tiny git tree shaped like the materialised sdist: vllm/_version.py + one module, pristine tag."""
    src = root / "vllm-src"
    (src / "vllm" / "core").mkdir(parents=True)
    (src / "vllm" / "_version.py").write_text(f"__version__ = version = '{version}'\n")
    (src / "vllm" / "__init__.py").write_text("")
    (src / "vllm" / "core" / "sched.py").write_text("".join(f"line {i}\n" for i in range(40)))
    git(src, "init", "-q", "-b", "pristine")
    git(src, "add", "-A")
    git(src, "commit", "-q", "-m", "pristine")
    git(src, "tag", pins.PRISTINE_REF.removeprefix("refs/tags/"))
    return src


@pytest.fixture
def fake_release(tmp_path: Path) -> Path:
    return make_fake_release(tmp_path)


def pytest_collection_modifyitems(config, items):
    """Longest files first, so `make test`'s xdist workers (--dist loadfile hands out files in this order)
    do not end on one long engine test while the other worker idles: files with tests marked both vllm
    and slow, then vllm, then slow, then the rest; collection order inside each group."""
    def weight(item) -> int:
        marks = {m.name for m in item.iter_markers()}
        return 2 * ("vllm" in marks) + ("slow" in marks)

    by_file: dict = {}
    for item in items:
        by_file[item.path] = max(by_file.get(item.path, 0), weight(item))
    items.sort(key=lambda item: -by_file[item.path])  # stable: collection order within a group
