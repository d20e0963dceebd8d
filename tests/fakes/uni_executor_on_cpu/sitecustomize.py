"""Test fake (PYTHONPATH entry of a bench child): keep `distributed_executor_backend="uni"` on CPU.

vLLM's CPU platform turns "uni" into "mp" in multiprocess mode (its OpenMP set-up wants its own
worker process). On one GPU, "uni" is vLLM's default: the worker, and so the worker's torch
profiler, lives in the EngineCore process, next to the EngineCore profiler patch 0001 starts.
This hook lets the CPU reproduce that layout: after `vllm.platforms.cpu` loads, its
`check_and_update_config` restores "uni" when "uni" was asked for.
"""
import importlib.abc
import importlib.machinery
import sys

TARGET = "vllm.platforms.cpu"


def _patch(module):
    cls = module.CpuPlatform
    original = cls.check_and_update_config.__func__

    def check_and_update_config(klass, vllm_config):
        asked = vllm_config.parallel_config.distributed_executor_backend
        original(klass, vllm_config)
        if asked == "uni" and vllm_config.parallel_config.distributed_executor_backend != "uni":
            vllm_config.parallel_config.distributed_executor_backend = "uni"
            print("fake-uni: distributed_executor_backend kept 'uni' on CPU", flush=True)

    cls.check_and_update_config = classmethod(check_and_update_config)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != TARGET:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_and_patch(module):
            exec_module(module)
            _patch(module)

        spec.loader.exec_module = exec_and_patch
        return spec


sys.meta_path.insert(0, _Finder())
