"""Root conftest for vLLM's own tests run by tools/upstream_tests.py (CPU, offline).

tools/upstream_tests.py copies this file over tests/conftest.py in its temporary
export of vLLM's tests/: vLLM's own root conftest imports GPU-, network- and
asset-only helpers (tblib, image/audio/video assets, HF model runners) at import
time, so it cannot even be loaded here. The conftest.py files below it
(tests/v1/engine, tests/v1/kv_connector/unit, ...) load as upstream, unchanged.

This file provides what the selected tests need from the root conftest, each
written for this harness with the meaning upstream gives it:
- vLLM's pytest markers (vLLM's pyproject.toml registers them; the export has none);
- `--optional` and its skip, so `@pytest.mark.optional` tests stay skipped as upstream;
- `caplog_vllm` (caplog seeing the "vllm" logger, which does not propagate by default).
Fixtures for model runners, media assets and GPU clean-up are left out on purpose:
the tests that use them need weights, network or a GPU and are deselected in
tools/upstream_tests.txt with that reason.
"""
from __future__ import annotations

import logging

import pytest

# vLLM 0.32.0 pyproject.toml [tool.pytest.ini_options] markers (names only matter here).
VLLM_MARKERS = (
    "slow_test", "skip_global_cleanup", "core_model", "hybrid_model", "cpu_model", "cpu_test",
    "split", "distributed", "optional",
)


def pytest_configure(config: pytest.Config) -> None:
    for name in VLLM_MARKERS:
        config.addinivalue_line("markers", f"{name}: vLLM test marker")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--optional", action="store_true", default=False,
                     help="run tests marked @pytest.mark.optional (skipped otherwise, as upstream)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--optional"):
        return
    skip = pytest.mark.skip(reason="optional test: pass --optional to run it")
    for item in items:
        if "optional" in item.keywords:
            item.add_marker(skip)


@pytest.fixture()
def caplog_vllm(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch):
    """caplog at INFO that also sees records of the "vllm" logger (propagate is off by default)."""
    monkeypatch.setattr(logging.getLogger("vllm"), "propagate", True)
    with caplog.at_level(logging.INFO):
        yield caplog
