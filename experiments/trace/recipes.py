"""Which profiler `make trace` uses, picked by backend (not by whether `nsys` exists), and its command line.

- CPU backend + nsys: Nsight Systems records NVTX ranges and OS-runtime calls of every process
  the run starts (frontend, EngineCore, worker): `--trace=nvtx,osrt --sample=none
  --cpuctxsw=none`. No CUDA tracing and no capture range: vLLM's CPU worker refuses the `cuda`
  profiler type, and `--sample=cpu` left `nsys --start-agent` processes spinning on Debian's
  2022.4 (../shared/notes/nsys-on-cpu.md). VLLM_NVTX_SCOPES_FOR_PROFILING=1 turns vLLM's scopes
  (and patch 0001's EngineCore scopes) into NVTX ranges.
- CUDA backend + nsys: vLLM's documented GPU recipe (docs/contributing/profiling.md): CUDA +
  NVTX + OS runtime, capture range driven by vLLM's `cuda` profiler (start/stop_profile),
  worker processes spawned (VLLM_WORKER_MULTIPROC_METHOD=spawn, vLLM's advice under nsys).
- No nsys: vLLM's torch profiler (`--profiler-config torch`), Chrome-trace JSON per process.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field

NVTX_ENV = {"VLLM_NVTX_SCOPES_FOR_PROFILING": "1"}
TORCH_SCOPES_ENV = {"VLLM_CUSTOM_SCOPES_FOR_PROFILING": "1"}

# OS-runtime calls shorter than 100 us are not recorded: start-up alone makes ~160k short
# mmap/munmap calls (an 11 MB export for a 16-request run); the blocking waits that show where a
# process idles (epoll_wait, poll, read on a pipe) stay. No backtraces (they need sampling).
CPU_NSYS_ARGS = ("--trace=nvtx,osrt", "--sample=none", "--cpuctxsw=none", "--osrt-threshold=100000",
                 "--backtrace=none")
CUDA_NSYS_ARGS = ("--trace=cuda,nvtx,osrt", "--trace-fork-before-exec=true", "--cuda-graph-trace=node",
                  "--capture-range=cudaProfilerApi", "--capture-range-end=stop")


@dataclass(frozen=True)
class Recipe:
    profiler: str  # "nsys" or "torch"
    backend: str  # "cpu" or "cuda"
    why: str
    nsys_args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    # vLLM profiler type driving start/stop_profile inside the run (None: trace the whole run).
    vllm_profiler: str | None = None

    @property
    def name(self) -> str:
        return f"{self.profiler}-{self.backend}"


def choose(backend: str, nsys: str | None = None) -> Recipe:
    """The recipe for `backend`; `nsys` is the nsys executable (default: looked up on PATH)."""
    nsys = shutil.which("nsys") if nsys is None else nsys
    if backend not in ("cpu", "cuda"):
        raise ValueError(f"unknown backend {backend!r}: expected 'cpu' or 'cuda'")
    if not nsys:
        return Recipe("torch", backend, "no nsys on this machine (`make nsys` installs it where it can): "
                      "vLLM's torch profiler, Chrome-trace JSON (open in https://ui.perfetto.dev)",
                      env=dict(TORCH_SCOPES_ENV), vllm_profiler="torch")
    if backend == "cpu":
        return Recipe("nsys", "cpu", "nsys on a CPU backend: NVTX ranges and OS-runtime calls of every engine "
                      "process, whole run (no CUDA trace, no capture range)",
                      nsys_args=CPU_NSYS_ARGS, env=dict(NVTX_ENV))
    return Recipe("nsys", "cuda", "nsys on a CUDA backend: CUDA + NVTX + OS runtime, capture range "
                  "from vLLM's cuda profiler (start/stop_profile)",
                  nsys_args=CUDA_NSYS_ARGS, env={**NVTX_ENV, "VLLM_WORKER_MULTIPROC_METHOD": "spawn"},
                  vllm_profiler="cuda")


def nsys_command(recipe: Recipe, output_base: str, program: list[str], nsys: str = "nsys") -> list[str]:
    """`nsys profile` around `program`, writing `<output_base>.nsys-rep` (or `.qdstrm` where the
    automatic import fails, as with Debian's 2022.4: see nsys_run.import_report)."""
    if recipe.profiler != "nsys":
        raise ValueError(f"recipe {recipe.name} does not use nsys")
    return [nsys, "profile", "--force-overwrite=true", "-o", output_base, *recipe.nsys_args, *program]
