"""vLLM's own unit tests (scheduler, KV cache, prefix cache, patch 0002's) pass on the patched engine.

Runs tools/upstream_tests.py (selection: tools/upstream_tests.txt) against
build/vllm-patched; `make test` builds it first (apply-patches).
"""
from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
import sys

import pytest

from tools import pins

from tools import upstream_tests


def test_selection_runs_whole_directories_and_every_drop_says_why(tmp_path):
    tests, deselects, ignores, slow = upstream_tests.parse_list(upstream_tests.DEFAULT_LIST)
    assert {"tests/v1/core", "tests/v1/engine", "tests/config", "tests/engine",
            "tests/v1/kv_connector/unit"} <= set(tests)
    assert deselects and all("::" in d for d in deselects)
    # what the stand-ins, the harness conftest and pytest-asyncio made runnable stays selected
    for node in ("tests/v1/core/test_priority_preemption_bug.py", "tests/v1/core/test_kv_cache_utils.py::test_estimate",
                 "tests/v1/core/test_kv_cache_utils.py::test_no_warning_when_draft_group_is_identified",
                 "tests/v1/engine/test_admission_control.py", "tests/engine/test_arg_utils.py::TestDeviceIds"):
        assert not any(d.startswith(node) or node.startswith(d) for d in deselects + ignores), node
    # make test may skip a slow test only in a file the series does not touch
    touched = {line.split()[2].removeprefix("a/") for p in sorted((pins.REPO_ROOT / "patches").glob("*.patch"))
               for line in p.read_text().splitlines() if line.startswith("diff --git ")}
    assert slow and all("::" in s and s.split("::")[0] not in touched for s in slow)
    bad = tmp_path / "list.txt"
    bad.write_text("tests/v1/core\ndeselect tests/v1/core/test_scheduler.py::test_x\n")
    with pytest.raises(SystemExit, match="needs a target and a `# reason`"):
        upstream_tests.parse_list(bad)


@pytest.mark.vllm
@pytest.mark.slow
def test_upstream_unit_tests_pass_on_patched_engine(tmp_path):
    if not (pins.PATCHED_ENGINE_DIR / "vllm" / "__init__.py").exists():
        pytest.skip("build/vllm-patched missing: run `make apply-patches`")
    out = tmp_path / "upstream-tests.json"
    proc = subprocess.run([sys.executable, "-m", "tools.upstream_tests", "--skip-slow", "--json", str(out)],
                          cwd=pins.REPO_ROOT, capture_output=True, text=True, timeout=900)
    tail = (proc.stdout + proc.stderr)[-4000:]
    assert out.exists(), tail
    result = json.loads(out.read_text())
    assert result["engine"] == str(pins.PATCHED_ENGINE_DIR.resolve())
    assert proc.returncode == 0 and result["ok"], tail
    assert result["tests"] > 0 and result["failures"] == 0 and result["errors"] == 0, tail
    assert "tests/v1/core" in result["paths"] and "tests/v1/engine" in result["paths"]
    assert result["skipped_slow"]  # make test-vllm-upstream runs those


def test_standins_resolve_offline_and_are_named_by_upstream_tests(tmp_path, monkeypatch):
    from huggingface_hub import snapshot_download
    from transformers import AutoConfig

    ids = upstream_tests.standin_ids()
    assert {"facebook/opt-125m", "Qwen/Qwen3-0.6B", "facebook/opt-350m"} <= set(ids)
    assert set(upstream_tests.GENERATED_TOKENIZERS) <= set(ids)
    small = {k: functools.partial(fn, corpus_mb=1, trained_vocab=2000)  # the full one: see the next test's subject
             for k, fn in upstream_tests.GENERATED_TOKENIZERS.items()}
    monkeypatch.setattr(upstream_tests, "GENERATED_TOKENIZERS", small)
    upstream_tests.fake_hf_cache(tmp_path)
    for repo_id in (*ids, *upstream_tests.PLACEHOLDER_IDS):
        snap = snapshot_download(repo_id, cache_dir=tmp_path / "hub", local_files_only=True)
        if repo_id in upstream_tests.PLACEHOLDER_IDS:
            assert not any(tmp_path.joinpath(snap).iterdir())  # a name only: no config behind it
            continue
        config = AutoConfig.from_pretrained(snap, local_files_only=True)
        if repo_id in small:
            assert (tmp_path.joinpath(snap) / "tokenizer.json").exists()
        assert config.architectures and not list((upstream_tests.STANDINS_DIR / repo_id).glob("*.safetensors"))
    # no stand-in without a test that names it (the vLLM tree's tests at the patched branch)
    if not (pins.SOURCE_DIR / ".git").exists():
        pytest.skip("./vllm missing: run `make source`")
    for repo_id in ids:
        found = subprocess.run(["git", "-C", str(pins.SOURCE_DIR), "grep", "-q", "-F", f'"{repo_id}"',
                                pins.PATCHED_BRANCH, "--", "tests"], capture_output=True)
        assert found.returncode == 0, f"no vLLM test names {repo_id}"


def test_harness_conftest_gives_markers_caplog_vllm_optional_and_asyncio(tmp_path):
    shutil.copyfile(upstream_tests.CONFTEST, tmp_path / "conftest.py")
    (tmp_path / "test_probe.py").write_text('''
import asyncio
import logging
import pytest

pytestmark = pytest.mark.cpu_test
logging.getLogger("vllm").propagate = False  # as importing vllm configures it

def test_caplog_vllm_sees_the_vllm_logger(caplog_vllm):
    logging.getLogger("vllm.config").info("override %d", 8192)
    assert "override 8192" in caplog_vllm.text

@pytest.mark.optional
def test_optional_is_skipped():
    raise AssertionError("ran without --optional")

@pytest.mark.asyncio
async def test_async_runs():
    await asyncio.sleep(0)
''')
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs", "--strict-markers",
                           "-o", "asyncio_default_fixture_loop_scope=function", str(tmp_path)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and re.search(r"2 passed, 1 skipped", proc.stdout), proc.stdout[-3000:] + proc.stderr[-2000:]


def test_pytest_asyncio_pin_is_vllms_own():
    ours = re.search(r"^pytest-asyncio==(\S+)", (pins.REPO_ROOT / "requirements" / "common.txt").read_text(), re.M)
    assert ours, "requirements/common.txt pins no pytest-asyncio"
    theirs = pins.SOURCE_DIR / "requirements" / "test" / "cpu.txt"
    if not theirs.exists():
        pytest.skip("./vllm missing: run `make source`")
    assert f"pytest-asyncio=={ours.group(1)}" in theirs.read_text().splitlines()


def test_llama3_layout_tokenizer_standin(tmp_path):
    """What vLLM's output-processor tests rely on: Llama 3's special ids, BOS first, exact round trip."""
    from transformers import AutoTokenizer

    from tools.upstream_standins.llama3_tokenizer import write_llama3_layout_tokenizer

    assert write_llama3_layout_tokenizer(tmp_path, corpus_mb=1, trained_vocab=2000) == 128256
    tok = AutoTokenizer.from_pretrained(tmp_path)
    assert (tok.bos_token_id, tok.eos_token_id, tok.convert_tokens_to_ids("<|eot_id|>")) == (128000, 128001, 128009)
    text = "Red Hat is the best open source company by far across Linux, K8s, and AI."
    ids = tok(text).input_ids
    assert ids[0] == 128000 and max(ids[1:]) < 2000  # placeholders above the trained vocabulary never encode
    assert tok.decode(ids, skip_special_tokens=True) == text
