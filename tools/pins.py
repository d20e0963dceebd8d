"""The versions this repo is pinned to, in one place."""
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

VLLM_VERSION = "0.32.0"
VLLM_TAG = "v0.32.0"
# Upstream commit of the tag, as recorded in the release's own _version.py.
VLLM_COMMIT_PREFIX = "5df63a720"
VLLM_UPSTREAM_URL = "https://github.com/vllm-project/vllm"
VLLM_SDIST_NAME = "vllm-0.32.0.tar.gz"
# sha256 of the PyPI sdist, as published by PyPI's simple index.
VLLM_SDIST_SHA256 = "d2c957d5eee3d0985012151315ddc62cbe0cd368fc96a5fc3510438d9dddf2ad"
TORCH_CPU_VERSION = "2.13.0+cpu"

SOURCE_DIR = REPO_ROOT / "vllm"          # the submodule path
PRISTINE_REF = "refs/tags/v0.32.0-pristine"  # first commit: the untouched release
PATCHED_BRANCH = "llm-infra/patched"      # the PR branch: series applied on pristine
BUILD_DIR = REPO_ROOT / "build"
PATCHED_ENGINE_DIR = BUILD_DIR / "vllm-patched"  # sys.path entry holding the patched `vllm` package
PATCHES_DIR = REPO_ROOT / "patches"
