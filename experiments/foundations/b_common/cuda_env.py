"""Finding out what this machine can run, and timing on a GPU when it has one.

Every GPU code path in the b-labs starts with `torch_cuda_skip_reason()` (or the
numba variant): on a machine without CUDA it returns a one-line reason and the
lab skips instead of printing a made-up figure.
"""

from __future__ import annotations

import os
import sys
from typing import Callable

from experiments.common.stats import summarize


def torch_cuda_skip_reason() -> str | None:
    """None when torch can use a CUDA device, else why not (one line)."""
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        build = "CPU-only build" if torch.version.cuda is None else f"CUDA {torch.version.cuda} build"
        return f"no CUDA device visible to torch {torch.__version__} ({build})"
    return None


def load_numba_cuda(simulate: bool | None = None):
    """Import `numba.cuda`, as the CPU simulator or the real target.

    numba decides once per process, at `import numba.cuda`, from
    NUMBA_ENABLE_CUDASIM. simulate=None picks the real target when torch sees a
    GPU and the simulator otherwise. If numba.cuda is already loaded the other
    way, that module is returned as it is (callers check `simulator_active()`).
    """
    if "numba.cuda" not in sys.modules:
        if simulate is None:
            simulate = torch_cuda_skip_reason() is not None
        if simulate:
            os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
            import numba.core.config as numba_config

            numba_config.ENABLE_CUDASIM = 1  # numba may already be imported without the variable
    from numba import cuda

    return cuda


def simulator_active() -> bool:
    """True when numba.cuda in this process is (or will load as) the CPU simulator."""
    from numba.core import config

    return bool(config.ENABLE_CUDASIM)


def _has_device(cuda_module) -> bool:
    try:
        return bool(cuda_module.is_available())
    except Exception:  # noqa: BLE001 - a broken driver is "no device" here
        return False


def numba_cuda_skip_reason() -> str | None:
    """None when numba can launch kernels on a real GPU, else why not (one line)."""
    reason = torch_cuda_skip_reason()
    if reason:
        return reason
    cuda = load_numba_cuda(simulate=False)
    if simulator_active():
        return "numba.cuda was loaded as the CPU simulator in this process (NUMBA_ENABLE_CUDASIM=1)"
    if not _has_device(cuda):
        return "numba.cuda sees no GPU (make setup BACKEND=cuda installs numba-cuda and libNVVM, requirements/engine-cuda.txt)"
    return nvvm_skip_reason()


def nvvm_skip_reason() -> str | None:
    """None when numba can compile kernels (it needs libNVVM), else why not.

    `is_available()` only says a driver and a device exist; compiling a @cuda.jit kernel also needs libNVVM,
    which comes with the CUDA toolkit or the `nvidia-cuda-nvcc` wheel, not with the driver."""
    try:
        from numba.cuda.cudadrv import nvvm

        if hasattr(nvvm, "is_available") and not nvvm.is_available():
            return "numba.cuda finds no libNVVM (make setup BACKEND=cuda installs the nvidia-nvvm wheel; or the CUDA toolkit)"
        nvvm.NVVM()  # loads the library; raises with the reason when it cannot
    except Exception as exc:  # noqa: BLE001 - any failure here means kernels cannot be compiled
        return f"numba.cuda cannot load libNVVM: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
    return None


def numba_backend_name() -> str:
    return "numba CUDA simulator (CPU)" if simulator_active() else "numba CUDA (GPU)"


def gpu_device_info() -> dict:
    """What the device says about itself: torch properties plus numba/CUDA attributes where present."""
    import torch

    props = torch.cuda.get_device_properties(0)
    info = {
        "name": props.name,
        "compute_capability": f"{props.major}.{props.minor}",
        "total_memory_bytes": int(props.total_memory),
        "sm_count": int(props.multi_processor_count),
    }
    for key in (
        "L2_cache_size",
        "regs_per_multiprocessor",
        "shared_memory_per_multiprocessor",
        "shared_memory_per_block",
        "shared_memory_per_block_optin",
        "max_threads_per_multi_processor",
        "warp_size",
        "clock_rate",
        "memory_clock_rate",
        "memory_bus_width",
    ):
        value = getattr(props, key, None)
        if value is not None:
            info[key] = int(value)
    # numba exposes the raw CUDA device attributes torch may not have.
    try:
        cuda = load_numba_cuda(simulate=False)
        if not simulator_active() and cuda.is_available():
            dev = cuda.get_current_device()
            for attr, key in (
                ("MEMORY_CLOCK_RATE", "memory_clock_rate"),
                ("GLOBAL_MEMORY_BUS_WIDTH", "memory_bus_width"),
                ("L2_CACHE_SIZE", "L2_cache_size"),
                ("MAX_SHARED_MEMORY_PER_MULTIPROCESSOR", "shared_memory_per_multiprocessor"),
                ("MAX_REGISTERS_PER_MULTIPROCESSOR", "regs_per_multiprocessor"),
                ("CLOCK_RATE", "clock_rate"),
            ):
                try:
                    info.setdefault(key, int(getattr(dev, attr)))
                except Exception:  # noqa: BLE001 - attribute missing in this numba version
                    pass
    except Exception:  # noqa: BLE001
        pass
    if "memory_clock_rate" in info and "memory_bus_width" in info:
        # clock in kHz, double data rate, bus width in bits
        info["theoretical_bandwidth_GBps"] = (
            2 * info["memory_clock_rate"] * 1e3 * info["memory_bus_width"] / 8 / 1e9
        )
    return info


def time_cuda_ms(
    fn: Callable[[], object], *, warmup: int = 3, repeats: int = 20, flush_l2: bool = True
) -> dict:
    """Device time of fn() from CUDA events: warm-up, then repeats, L2 flushed before each.

    The flush writes a buffer twice the L2 size so the timed kernel reads from
    HBM, not from lines the previous repeat left in L2.
    """
    import torch

    flush_buf = None
    if flush_l2:
        l2 = getattr(torch.cuda.get_device_properties(0), "L2_cache_size", 0) or 64 * 2**20
        flush_buf = torch.empty(2 * int(l2), dtype=torch.uint8, device="cuda")
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
    for s, e in zip(starts, ends):
        if flush_buf is not None:
            flush_buf.zero_()
        s.record()
        fn()
        e.record()
    torch.cuda.synchronize()
    samples = [s.elapsed_time(e) for s, e in zip(starts, ends)]
    out = summarize(samples)
    out["samples_ms"] = samples
    out["warmup"] = warmup
    out["l2_flushed"] = flush_l2
    return out
