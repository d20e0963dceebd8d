# llm-infra-learning: the two commands a fresh machine needs are
#   make bench   (set-up, pinned vLLM 0.32.0 source, patches, baseline vs patched)
#   make test    (the test suite; .ci/run calls it)
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV   ?= .venv
PY     := $(VENV)/bin/python
PRESET ?= default
REPEATS ?=
BENCH_ARGS ?=
export PYTHONPATH := $(CURDIR)

.PHONY: help setup source submodule check-versions apply-patches check-patches format-patches \
        bench bench-smoke gpu-evidence test test-fast clean trace nsys report notebooks labs-week1 labs-week2 gpu-labs docs docs-check test-vllm-upstream tiny-model labs-week3 sim

help: ## list targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-20s %s\n", $$1, $$2}'

$(VENV)/.setup-stamp: requirements/*.txt tools/setup_env.sh
	@bash tools/setup_env.sh

setup: ## create .venv with pinned deps (BACKEND=cpu|cuda, auto-detected; DRY_RUN=1: resolve only, install nothing)
	@$(if $(filter-out 0,$(DRY_RUN)),DRY_RUN=1 )bash tools/setup_env.sh

vllm/.git: | $(VENV)/.setup-stamp
	@$(PY) -m tools.vllm_source materialise

source: $(VENV)/.setup-stamp vllm/.git ## vLLM 0.32.0 source tree at ./vllm (PyPI sdist, offline-safe)

submodule: $(VENV)/.setup-stamp ## with network: make ./vllm the real git submodule at tag v0.32.0
	@$(PY) -m tools.vllm_source register-submodule

check-versions: source ## source tree and installed engine are both vLLM 0.32.0
	@$(PY) -m tools.vllm_source check

apply-patches: source ## apply patches/series: branch llm-infra/patched + build/vllm-patched
	@$(PY) -m tools.patches apply

check-patches: source ## series applies to pristine + installed; regenerating changes nothing
	@$(PY) -m tools.patches check

format-patches: source ## regenerate patches/ from the llm-infra/patched branch
	@$(PY) -m tools.patches format

BENCH_OUT ?= results/bench
TEST_WORKERS ?= 2
# Set-up step of `make bench` and `make trace`: install Nsight Systems where the machine allows it
# (Debian 12 + root; elsewhere it says how to get nsys); never fails the target (traces then use
# vLLM's torch profiler). NO_NSYS=1 skips it.
NSYS_SETUP = $(if $(NO_NSYS),true,bash tools/install_nsys.sh || echo "[setup] continuing without Nsight Systems: traces use vLLM's torch profiler (NO_NSYS=1 skips this step)" >&2)

bench: apply-patches ## set-up (incl. Nsight Systems where possible), baseline vs patched, then traces and the PR draft (PRESET=default|smoke|pr-0002|long-docs|overhead-0001|aa|prefill-cap, REPEATS=N, NO_TRACE=1, NO_NSYS=1, TP= PP= DP= DISTRIBUTED_BACKEND=mp|ray, BENCH_ARGS=--allow-busy)
	@$(if $(NO_TRACE),true,$(NSYS_SETUP))
	@$(PY) -m experiments.bench --preset $(PRESET) $(if $(REPEATS),--repeats $(REPEATS)) --out $(BENCH_OUT) $(if $(TP),--tp $(TP)) $(if $(PP),--pp $(PP)) $(if $(DP),--dp $(DP)) $(if $(DISTRIBUTED_BACKEND),--distributed-backend $(DISTRIBUTED_BACKEND)) $(BENCH_ARGS)
	@$(if $(NO_TRACE),true,$(PY) -m experiments.trace $(TRACE_ARGS) || echo "[bench] the trace step failed (exit $$?; its cause is printed above): the bench result stands and the report is still written" >&2)
	@$(PY) -m analysis.report --latest $(BENCH_OUT) --out $(BENCH_OUT)/$$(cat $(BENCH_OUT)/LATEST)/pr_draft $(if $(NO_TRACE),--no-trace)

# PyTorch only, no set-up: the lent GPU machine has torch but no vLLM and no .venv.
gpu-evidence: ## per-step forward time of a Llama-3-8B shape on this GPU -> $$OUT (DRY_RUN=1: validate the plan on CPU)
	@$(if $(wildcard $(PY)),$(PY),python3) -m experiments.gpu_evidence $(if $(filter-out 0,$(DRY_RUN)),--dry-run) $(if $(OUT),--out $(OUT))

bench-smoke: PRESET=smoke
bench-smoke: bench ## the <2 min smoke preset

test: apply-patches ## the whole test suite (CI runs this), test files spread over 2 workers (TEST_WORKERS=0: one process)
	@$(PY) -m pytest -q --durations=25 -n $(TEST_WORKERS) --dist loadfile

test-vllm-upstream: apply-patches ## vLLM's own unit tests (tools/upstream_tests.txt) on the patched engine, CPU, offline
	@$(PY) -m tools.upstream_tests

test-fast: $(VENV)/.setup-stamp ## tests that need no engine start
	@$(PY) -m pytest -q -m "not vllm and not slow"

clean: ## remove build outputs (keeps .venv, ./vllm and results/)
	rm -rf build .pytest_cache

trace: apply-patches ## baseline + patched under a profiler -> nsys_traces/<run>/ (installs Nsight Systems where possible; CPU: nsys NVTX+OS runtime; CUDA: nsys GPU recipe; no nsys: torch profiler; NO_NSYS=1)
	@$(NSYS_SETUP)
	@$(PY) -m experiments.trace $(TRACE_ARGS)

nsys: ## install Nsight Systems (Debian 12 + root: apt non-free, ~1 min); a no-op when present
	@bash tools/install_nsys.sh

report: $(VENV)/.setup-stamp ## from committed results: docs/pr_draft/, README figures, patch 0002 results
	@$(PY) -m analysis.report $(REPORT_ARGS)
	@$(PY) -m analysis.readme_figures
	@$(PY) -m experiments.patch0002.readme

notebooks: $(VENV)/.setup-stamp ## execute the analysis notebooks
	@$(PY) -m analysis.run_notebooks

labs-week1: $(VENV)/.setup-stamp ## regenerate week-1 lab results, READMEs and the day 6-7 note (~6 min)
	@for l in a1_gil_threads_vs_processes a2_producer_consumer_queues a3_read_vs_mmap a4_mock_inference_service a5_latency_throughput_profiling; do $(PY) -m experiments.foundations.$$l || exit 1; done
	@$(PY) -m experiments.foundations.a_common.request_path_note

labs-week2: $(VENV)/.setup-stamp ## regenerate week-2 CPU results (GPU halves: make gpu-labs)
	@for l in b1_gpu_structure b2_warp_divergence b3_memory_bandwidth_coalescing b4_streams_async_copy b5_launch_overhead_trace; do $(PY) -m experiments.foundations.$$l || exit 1; done

gpu-labs: $(VENV)/.setup-stamp ## on an NVIDIA machine: the GPU half of every week-2 lab (`make gpu-labs --dry-run` anywhere: imports + would-run/skip check)
	+@$(PY) -m experiments.foundations.b_common.run_gpu_labs $(if $(findstring n,$(firstword -$(MAKEFLAGS))),--dry-run)

docs: $(VENV)/.setup-stamp ## re-render every generated block (lab READMEs, notes, product READMEs) from the committed results
	@$(PY) -m experiments.lab_docs

docs-check: $(VENV)/.setup-stamp ## fail (naming the block) if any generated block differs from its render; writes nothing
	@$(PY) -m experiments.lab_docs --check

tiny-model: $(VENV)/.setup-stamp ## train models/tiny-llama-trained on stdlib sources (~8 min wall, 2 threads)
	@$(PY) -m tools.train_tiny_model --max-minutes 8

labs-week3: $(VENV)/.setup-stamp ## vLLM labs c1-c5 on the real engine (models/tiny-llama-trained)
	@for l in c1_prefill_decode_batching c2_paged_kv_cache c3_mixed_scheduling c4_attention_graphs_quant c5_speculative_decoding; do $(PY) -m experiments.vllm.$$l || exit 1; done

sim: $(VENV)/.setup-stamp ## virtual-clock simulator on vLLM's real Scheduler: decision match, sim vs real, benches, H100/H200 projection, speed (~3 min, no engine start; SIM_ARGS=calibrate|served re-measure: served runs put each point's plain server beside one that times every EngineCore step)
	@$(PY) -m experiments.sim $(SIM_ARGS)
