"""Run a selection of vLLM's own unit tests against the PATCHED engine, CPU-only and offline.

    python -m tools.upstream_tests [--list FILE] [--json OUT] [--skip-slow] [-- extra pytest args]

What it does:
- exports `tests/` of the vLLM source tree at branch llm-infra/patched (so the
  tests a patch adds are included) into a temporary directory; pytest's rootdir
  is that copy, so `import vllm` cannot pick up the uncompiled source tree;
- puts build/vllm-patched first (and alone) on PYTHONPATH: `import vllm` is the
  patched runnable engine (checked before pytest starts);
- a private, offline HF cache built from tools/upstream_standins/ (config files of
  the Hub models the selected tests name, as published, no weights) plus an empty
  snapshot for each placeholder model name the tests give EngineArgs;
- vLLM's root tests/conftest.py (it imports GPU/network-only helpers) replaced in the
  export by tools/upstream_conftest.py (markers, `--optional`, `caplog_vllm`); the
  conftest.py files below it load as upstream;
- pytest (`-p no:cacheprovider`, pytest-asyncio for the async tests) with the tests and
  deselects from tools/upstream_tests.txt; a JUnit XML gives the counts.
Exit status 0 only if pytest passed and ran more than 0 tests.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
from io import BytesIO
from pathlib import Path

from tools import pins
from tools.upstream_standins.llama3_tokenizer import write_llama3_layout_tokenizer

DEFAULT_LIST = pins.REPO_ROOT / "tools" / "upstream_tests.txt"
FAKE_REVISION = "0" * 40

STANDINS_DIR = pins.REPO_ROOT / "tools" / "upstream_standins"
CONFTEST = pins.REPO_ROOT / "tools" / "upstream_conftest.py"
# Model names the tests pass to EngineArgs only as placeholders ("m", "test", ...). Under
# HF_HUB_OFFLINE=1 EngineArgs.__post_init__ resolves every model name to a cached snapshot,
# so each gets an empty one (upstream CI runs online, where these names are never resolved).
PLACEHOLDER_IDS = ("m", "test", "dummy")
# Stand-ins whose tokenizer is generated into the cache at each run (too large to commit).
GENERATED_TOKENIZERS = {"meta-llama/Llama-3.2-1B": write_llama3_layout_tokenizer}


def parse_list(path: Path) -> tuple[list[str], list[str], list[str], list[str]]:
    """(test paths / node ids, deselect prefixes, ignored paths, slow node ids); `#` starts a comment line.

    `deselect X  # reason`, `ignore X  # reason` and `slow X  # reason` must say why: a list
    that drops a test without a reason is refused. Slow tests run unless --skip-slow (make test)."""
    tests, deselects, ignores, slow = [], [], [], []
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        entry, _, reason = line.partition("#")
        kind, _, target = entry.strip().partition(" ")
        if kind in ("deselect", "ignore", "slow"):
            if not reason.strip() or not target.strip():
                raise SystemExit(f"{path}:{n}: `{line}` needs a target and a `# reason`")
            {"deselect": deselects, "ignore": ignores, "slow": slow}[kind].append(target.strip())
        else:
            tests.append(entry.strip())
    return tests, deselects, ignores, slow


def export_tests(dest: Path, src: Path = pins.SOURCE_DIR, ref: str = pins.PATCHED_BRANCH) -> None:
    """`git archive <ref> tests` into dest (the committed tests, whatever is checked out)."""
    res = subprocess.run(["git", "-C", str(src), "archive", "--format=tar", ref, "tests"],
                         capture_output=True, check=True)
    with tarfile.open(fileobj=BytesIO(res.stdout)) as tar:
        tar.extractall(dest, filter="data")


def standin_ids(root: Path = STANDINS_DIR) -> list[str]:
    """Hub ids with a stand-in: every <org>/<name> folder of root holding a config.json."""
    return sorted(str(c.parent.relative_to(root)) for c in root.glob("*/*/config.json"))


def fake_hf_cache(hf_home: Path, root: Path = STANDINS_DIR) -> None:
    """An offline HF cache: one snapshot per stand-in (its files as they are, plus a generated
    tokenizer where GENERATED_TOKENIZERS has one), one empty snapshot per placeholder."""
    for repo_id in (*standin_ids(root), *PLACEHOLDER_IDS):
        repo = hf_home / "hub" / ("models--" + repo_id.replace("/", "--"))
        snap = repo / "snapshots" / FAKE_REVISION
        snap.mkdir(parents=True, exist_ok=True)
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / "main").write_text(FAKE_REVISION)
        src = root / repo_id
        for f in sorted(src.iterdir()) if src.is_dir() else ():
            shutil.copyfile(f, snap / f.name)
        if repo_id in GENERATED_TOKENIZERS:
            GENERATED_TOKENIZERS[repo_id](snap)


def junit_counts(xml_path: Path) -> dict:
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    if not xml_path.exists():
        return counts
    root = ET.parse(xml_path).getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    for suite in suites:
        for key in counts:
            counts[key] += int(suite.get(key, 0))
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    return counts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--list", type=Path, default=DEFAULT_LIST, help="selection file")
    ap.add_argument("--engine", type=Path, default=pins.PATCHED_ENGINE_DIR,
                    help="directory put on PYTHONPATH (default: build/vllm-patched)")
    ap.add_argument("--ref", default=pins.PATCHED_BRANCH, help="vLLM tree ref whose tests/ are run")
    ap.add_argument("--json", type=Path, help="write the counts and timing here")
    ap.add_argument("--timeout", type=int, default=1500, help="wall-clock limit for pytest, seconds")
    ap.add_argument("--skip-slow", action="store_true",
                    help="also deselect the list's `slow` tests (make test; make test-vllm-upstream runs them)")
    ap.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = ap.parse_args(argv)

    engine = args.engine.resolve()
    if not (engine / "vllm" / "__init__.py").exists():
        print(f"upstream-tests: {engine}/vllm missing: run `make apply-patches` first", file=sys.stderr)
        return 2
    if importlib.util.find_spec("pytest_asyncio") is None:  # the async tests would fail as "not natively supported"
        print("upstream-tests: pytest-asyncio missing (requirements/common.txt): run `make setup`", file=sys.stderr)
        return 2
    tests, deselects, ignores, slow = parse_list(args.list)
    skipped_slow = slow if args.skip_slow else []
    with tempfile.TemporaryDirectory(prefix="vllm-upstream-tests-") as tmp:
        tmp = Path(tmp)
        work = tmp / "tree"
        work.mkdir()
        export_tests(work, ref=args.ref)
        # vLLM's root conftest cannot load here (see tools/upstream_conftest.py): ours replaces it
        # in the export; the conftest.py files below it load as upstream.
        shutil.copyfile(CONFTEST, work / "tests" / "conftest.py")
        fake_hf_cache(tmp / "hf")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "VLLM_"))}
        env.update(PYTHONPATH=str(engine), HF_HOME=str(tmp / "hf"), HF_HUB_OFFLINE="1",
                   TRANSFORMERS_OFFLINE="1", VLLM_TARGET_DEVICE="cpu", PYTHONDONTWRITEBYTECODE="1")
        probe = subprocess.run([sys.executable, "-c", "import vllm; print(vllm.__file__)"], cwd=work, env=env,
                               capture_output=True, text=True)
        where = probe.stdout.strip()
        if probe.returncode != 0 or not where.startswith(str(engine)):
            print(f"upstream-tests: `import vllm` resolves to {where or probe.stderr[-2000:]!r}, "
                  f"not {engine}", file=sys.stderr)
            return 2
        xml = tmp / "junit.xml"
        cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rfE",
               "--tb=short", f"--junitxml={xml}", "-o", "junit_family=xunit2",
               "-o", "asyncio_default_fixture_loop_scope=function",
               *[f"--deselect={d}" for d in deselects + skipped_slow], *[f"--ignore={i}" for i in ignores],
               *tests, *args.pytest_args]
        print(f"upstream-tests: vllm = {where}; {len(tests)} path(s), {len(deselects)} deselect(s), "
              f"{len(ignores)} ignored module(s), {len(skipped_slow)} slow test(s) skipped", flush=True)
        t0 = time.time()
        try:
            rc = subprocess.run(cmd, cwd=work, env=env, timeout=args.timeout).returncode
        except subprocess.TimeoutExpired:
            rc = 124
        wall = time.time() - t0
        counts = junit_counts(xml)
    result = {"returncode": rc, "wall_s": round(wall, 1), "engine": str(engine), "ref": args.ref,
              "paths": tests, "deselected": deselects, "ignored": ignores, "skipped_slow": skipped_slow, **counts}
    ok = rc == 0 and counts["tests"] > 0
    result["ok"] = ok
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(f"upstream-tests: {'PASSED' if ok else 'FAILED'}: {counts.get('passed', 0)} passed, "
          f"{counts['failures']} failed, {counts['errors']} errors, {counts['skipped']} skipped "
          f"in {wall:.0f} s (pytest rc={rc})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
