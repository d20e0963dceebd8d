"""The patch series on top of pinned vLLM: apply, check, regenerate.

    python -m tools.patches apply    # source branch llm-infra/patched + build/vllm-patched
    python -m tools.patches check    # series applies to pristine + installed; regenerating is a no-op
    python -m tools.patches format   # rewrite patches/ from the llm-infra/patched branch

Habits borrowed from ollama's vendored llama.cpp and electron: one git-format
patch per change, an order file (patches/series), `git am -3` onto a pinned
base, stamps so a second apply is a no-op, a printed recovery on failure, and
`format-patch --zero-commit --no-signature --no-numbered` so regenerating an
unchanged series produces no diff.

The patched *engine* is not compiled: it is a copy of the installed vLLM
package (hard links, patched files copied) with the same series applied with
`git apply`, put first on PYTHONPATH by the bench for the patched variant.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tools import pins
from tools.vllm_source import check_installed_engine, check_source_tree, installed_package_dir

GIT_ID = ["-c", "user.name=llm-infra-learning", "-c", "user.email=bot@llm-infra-learning.invalid",
          "-c", "commit.gpgsign=false"]
FORMAT_ARGS = ["--zero-commit", "--no-signature", "--no-numbered", "--filename-max-length=64"]
# A commit message line that numbers its patch as a follow-up of the one before ("0001b": its own
# change and PR, applied right after 0001); the other patches are numbered in order without it.
SERIES_NUMBER = re.compile(r"^Series-number: (\d{4}[a-z])$", re.M)


class PatchError(SystemExit):
    def __init__(self, msg: str):
        super().__init__(1)
        print(msg, file=sys.stderr)


def run(cmd: list[str], cwd: Path | None = None, env: dict | None = None, check: bool = True):
    res = subprocess.run(cmd, cwd=cwd, env=env, text=True, capture_output=True)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed (cwd={cwd}):\n{res.stdout}{res.stderr}")
    return res


def git(repo: Path, *args: str, check: bool = True):
    return run(["git", "-C", str(repo), *GIT_ID, *args], check=check)


# ---------------------------------------------------------------- the series

def series_files(patches_dir: Path = pins.PATCHES_DIR) -> list[Path]:
    order = patches_dir / "series"
    if not order.exists():
        raise PatchError(f"{order} is missing")
    names = [ln.strip() for ln in order.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    files = [patches_dir / n for n in names]
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise PatchError(f"patches/series names files that do not exist: {missing}")
    return files


def series_hash(patches_dir: Path = pins.PATCHES_DIR) -> str:
    h = hashlib.sha256()
    for f in series_files(patches_dir):
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


def recovery_text(repo: Path, patch: Path) -> str:
    return (
        f"\nPatch {patch.name} does not apply; nothing was changed.\n"
        "To recover:\n"
        f"  1. git -C {repo} checkout -b fix-series {pins.PRISTINE_REF.removeprefix('refs/tags/')}\n"
        f"  2. git -C {repo} am -3 patches/<each patch up to {patch.name}>, fix the conflict, "
        "git add the files, git am --continue\n"
        "  3. make format-patches (regenerates patches/ from the branch), then make apply-patches\n"
    )


# ---------------------------------------------------------------- source tree (PR branch)

def apply_to_source(src: Path, patches_dir: Path = pins.PATCHES_DIR, *, branch: str = pins.PATCHED_BRANCH) -> bool:
    """Put the series on `branch`, starting at the pristine tag. Returns False if already up to date.

    Atomic: the series is applied on a scratch branch; the real branch moves only
    when every patch applied.
    """
    check_source_tree(src)
    files = series_files(patches_dir)
    want = series_hash(patches_dir)
    stamp = src / ".git" / "llm-infra-series"
    head_branch = git(src, "rev-parse", "--abbrev-ref", "HEAD").stdout.strip()
    branch_sha = git(src, "rev-parse", "-q", "--verify", f"refs/heads/{branch}", check=False).stdout.strip()
    if stamp.exists() and branch_sha and stamp.read_text().split() == [want, branch_sha] and head_branch == branch:
        print(f"apply-patches: {src} branch {branch} already has series {want} (no-op)")
        return False
    if git(src, "status", "--porcelain", "--untracked-files=no").stdout.strip():
        raise PatchError(f"apply-patches: {src} has uncommitted changes; commit or stash them first "
                         f"(`git -C {src} stash`), then re-run.")
    if branch_sha and stamp.exists() and stamp.read_text().split()[1:] != [branch_sha]:
        backup = f"{branch}-backup-{branch_sha[:8]}"
        git(src, "branch", "-f", backup, branch_sha)
        print(f"apply-patches: {branch} had commits not made by apply-patches; kept them as {backup}")
    scratch = f"{branch}-applying"
    previous = head_branch if head_branch != "HEAD" else git(src, "rev-parse", "HEAD").stdout.strip()
    git(src, "checkout", "-q", "-B", scratch, pins.PRISTINE_REF.removeprefix("refs/"))
    for patch in files:
        res = git(src, "am", "-3", "--keep-cr", "--keep-non-patch", "--committer-date-is-author-date", str(patch.resolve()), check=False)
        if res.returncode != 0:
            git(src, "am", "--abort", check=False)
            git(src, "checkout", "-q", "-f", previous)
            git(src, "branch", "-D", scratch, check=False)
            raise PatchError(res.stdout + res.stderr + recovery_text(src, patch))
    git(src, "branch", "-f", branch, scratch)
    git(src, "checkout", "-q", branch)
    git(src, "branch", "-D", scratch)
    sha = git(src, "rev-parse", "HEAD").stdout.strip()
    stamp.write_text(f"{want} {sha}\n")
    print(f"apply-patches: {src} branch {branch} = pristine + {len(files)} patch(es) ({sha[:10]})")
    return True


# ---------------------------------------------------------------- installed package (runnable engine)

def _git_apply_outside_repo(cwd: Path, *args: str):
    # build/ lives inside this repo's work tree; stop git from discovering it so
    # `git apply` patches files relative to cwd instead of the repo root.
    env = {**os.environ, "GIT_CEILING_DIRECTORIES": str(cwd.parent.resolve())}
    return run(["git", "apply", *args], cwd=cwd, env=env, check=False)


def touched_paths(patch: Path) -> list[str]:
    paths = []
    for line in patch.read_text().splitlines():
        if line.startswith("+++ b/"):
            paths.append(line[len("+++ b/"):])
    return paths


def apply_to_package(installed: Path, dest: Path, patches_dir: Path = pins.PATCHES_DIR,
                     *, engine_version: str = "") -> bool:
    """Build dest/vllm = installed vllm package + series. Returns False if already up to date."""
    files = series_files(patches_dir)
    want = f"{series_hash(patches_dir)} {engine_version} {installed}"
    stamp = dest / ".llm-infra-series"
    if stamp.exists() and stamp.read_text().strip() == want and (dest / "vllm" / "__init__.py").exists():
        print(f"apply-patches: {dest} already built from series {want.split()[0]} (no-op)")
        return False
    staging = dest.with_name(dest.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        # Hard links: a 500 MB package in a second, without touching the original...
        shutil.copytree(installed, staging / "vllm", copy_function=os.link,
                        ignore=shutil.ignore_patterns("__pycache__"))
        # ...except the files the series edits, which become real copies first.
        for patch in files:
            for rel in touched_paths(patch):
                if not rel.startswith("vllm/"):
                    continue
                f = staging / rel
                if f.exists():
                    data = f.read_bytes()
                    f.unlink()
                    f.write_bytes(data)
        for patch in files:
            # Only the package: a patch's tests/ and docs/ hunks belong to the source tree.
            res = _git_apply_outside_repo(staging, "--include=vllm/*", str(patch.resolve()))
            if res.returncode != 0:
                raise PatchError(res.stdout + res.stderr + f"\nPatch {patch.name} does not apply to the "
                                 f"installed package {installed}; {dest} was left as it was.\n"
                                 "Check `make check-versions`; the installed engine must be vLLM "
                                 f"{pins.VLLM_VERSION}.")
        (staging / ".llm-infra-series").write_text(want + "\n")
        old = dest.with_name(dest.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if dest.exists():
            dest.rename(old)
        staging.rename(dest)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(f"apply-patches: {dest}/vllm = installed vLLM {engine_version} + {len(files)} patch(es)")
    return True


def apply_all() -> None:
    dist, ver = check_installed_engine()
    apply_to_source(pins.SOURCE_DIR)
    apply_to_package(installed_package_dir(), pins.PATCHED_ENGINE_DIR, engine_version=f"{dist}=={ver}")


# ---------------------------------------------------------------- regenerate / check

def format_patches(src: Path, out_dir: Path, *, branch: str = pins.PATCHED_BRANCH) -> list[Path]:
    """Write one patch per commit pristine..branch into out_dir, plus the series file."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("*.patch"):
        old.unlink()
    res = git(src, "format-patch", *FORMAT_ARGS, "-o", str(out_dir.resolve()),
              f"{pins.PRISTINE_REF.removeprefix('refs/')}..{branch}")
    names, number = [], 0
    for line in res.stdout.splitlines():
        if not line.strip():
            continue
        path = Path(line.strip())
        follow_up = SERIES_NUMBER.search(path.read_text().split("\n---\n", 1)[0])
        if follow_up is None:
            number += 1
        name = (follow_up.group(1) if follow_up else f"{number:04d}") + path.name[4:]
        path.rename(out_dir / name)
        names.append(name)
    (out_dir / "series").write_text(
        "# Applied in this order onto vLLM v0.32.0 (see patches/README.md).\n"
        + "".join(n + "\n" for n in names))
    return [out_dir / n for n in names]


def check_applies_to_package(installed: Path, scratch: Path, patches_dir: Path = pins.PATCHES_DIR) -> None:
    """Apply the series, in order, to copies of the installed files it touches
    (a later patch may edit lines an earlier one changed)."""
    files = series_files(patches_dir)
    for patch in files:
        for rel in touched_paths(patch):
            src = installed.parent / rel
            if rel.startswith("vllm/") and src.exists() and not (scratch / rel).exists():
                (scratch / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, scratch / rel)
    for patch in files:
        res = _git_apply_outside_repo(scratch, "--include=vllm/*", str(patch.resolve()))
        if res.returncode != 0:
            raise PatchError(f"check-patches: {patch.name} does not apply to {installed}:\n{res.stderr}")


def check_series(src: Path, patches_dir: Path = pins.PATCHES_DIR, installed: Path | None = None) -> None:
    """Apply to a pristine clone and to the installed package; regenerate; fail on any difference."""
    check_source_tree(src)
    with tempfile.TemporaryDirectory(prefix="check-patches-") as tmp:
        clone = Path(tmp) / "vllm"
        run(["git", "clone", "-q", "--shared", "--no-checkout", str(src), str(clone)])
        git(clone, "fetch", "-q", "origin", f"+{pins.PRISTINE_REF}:{pins.PRISTINE_REF}")
        git(clone, "checkout", "-q", "-b", "pristine-check", pins.PRISTINE_REF.removeprefix("refs/"))
        for patch in series_files(patches_dir):
            res = git(clone, "am", "-3", "--keep-cr", "--keep-non-patch", "--committer-date-is-author-date", str(patch.resolve()), check=False)
            if res.returncode != 0:
                raise PatchError(res.stdout + res.stderr + recovery_text(src, patch))
        regen = Path(tmp) / "regen"
        format_patches(clone, regen, branch="pristine-check")
        diff = run(["diff", "-ru", "-x", "README.md", str(patches_dir), str(regen)], check=False)
        if diff.returncode != 0:
            raise PatchError("check-patches: regenerating the series changes it:\n" + diff.stdout[:4000]
                             + "\nRun `make format-patches` and commit patches/.")
        if installed is not None:
            check_applies_to_package(installed, Path(tmp) / "installed", patches_dir)
    print(f"check-patches: {len(series_files(patches_dir))} patch(es) apply to pristine {pins.VLLM_VERSION}"
          + (" and to the installed package" if installed else "") + "; regenerating is a no-op")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("apply", help="apply the series to ./vllm (branch) and build build/vllm-patched")
    sub.add_parser("check", help="series applies to pristine + installed, regenerating is a no-op")
    sub.add_parser("format", help="regenerate patches/ from the llm-infra/patched branch")
    sub.add_parser("hash", help="print the series hash")
    args = ap.parse_args(argv)
    if args.cmd == "apply":
        apply_all()
    elif args.cmd == "check":
        check_installed_engine()
        check_series(pins.SOURCE_DIR, installed=installed_package_dir())
    elif args.cmd == "format":
        check_source_tree(pins.SOURCE_DIR)
        files = format_patches(pins.SOURCE_DIR, pins.PATCHES_DIR)
        print(f"format-patches: wrote {len(files)} patch(es) and patches/series")
    else:
        print(series_hash())
    return 0


if __name__ == "__main__":
    sys.exit(main())
