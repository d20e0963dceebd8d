#!/usr/bin/env bash
# `make nsys`: install Nsight Systems where this machine allows it; a no-op when it is there.
#
# - nsys already usable (CLI on PATH and, for the Debian 2022.4 build, its QdstrmImporter): print
#   the version and exit 0 in well under a second.
# - Debian 12 with root and apt: add the `contrib non-free` components of the same Debian
#   archive as a second source (the default lists only `main`), then install
#   `nsight-systems` (host: nsys, nsys-ui, QdstrmImporter) and `nsight-systems-target`
#   (the profiling CLI; pulls libcuda1, a library only: no driver or GPU needed).
#   Seen: ~1 min, ~600 MB (../shared/notes/nsys-on-cpu.md).
# - Anywhere else: say why and how to get it (NVIDIA's CUDA repository), exit 3; a failed apt run
#   says so and exits 4. Never prompts. `make bench` and `make trace` run it and go on without nsys
#   when it fails (their traces then use vLLM's torch profiler).
#
# NSYS_UI=1 also installs what a headless nsys-ui screenshot needs (xvfb, xdotool, x11-apps,
# imagemagick).
set -euo pipefail

NONFREE_SOURCE=/etc/apt/sources.list.d/llm-infra-debian-non-free.sources
IMPORTER_GLOB=(/usr/lib/nsight-systems/host-linux-x64/QdstrmImporter /opt/nvidia/nsight-systems/*/host-linux-x64/QdstrmImporter)

have_importer() {
    # The CUDA-toolkit nsys imports by itself; Debian's 2022.4 needs QdstrmImporter run by hand.
    local f
    for f in "${IMPORTER_GLOB[@]}"; do [[ -x "$f" ]] && return 0; done
    return 1
}

ui_tools_present() {
    command -v Xvfb >/dev/null && command -v xdotool >/dev/null && command -v xwd >/dev/null \
        && command -v convert >/dev/null
}

if command -v nsys >/dev/null && have_importer && { [[ "${NSYS_UI:-0}" != 1 ]] || ui_tools_present; }; then
    echo "[nsys] present: $(nsys --version 2>/dev/null | head -1) ($(command -v nsys))"
    exit 0
fi

how_to() {
    cat >&2 <<'EOF'
[nsys] To install Nsight Systems yourself:
  - Debian 12 (root): add `Components: contrib non-free` for deb.debian.org/debian bookworm to an
    apt source, `apt-get update`, `apt-get install nsight-systems nsight-systems-target`.
  - Ubuntu / other distributions, or a newer nsys: NVIDIA's CUDA repository
    (https://developer.nvidia.com/nsight-systems, package `nsight-systems-<version>`), or the CUDA
    toolkit, which ships it.
Without nsys, `make trace` uses vLLM's torch profiler and the nsys tests skip.
EOF
}

if [[ "$(id -u)" != 0 ]]; then
    echo "[nsys] cannot install: not root (apt needs root)" >&2; how_to; exit 3
fi
if ! command -v apt-get >/dev/null; then
    echo "[nsys] cannot install: no apt-get on this machine" >&2; how_to; exit 3
fi
# shellcheck disable=SC1091
. /etc/os-release
if [[ "${ID:-}" != debian || "${VERSION_CODENAME:-}" != bookworm ]]; then
    echo "[nsys] cannot install automatically: ${PRETTY_NAME:-unknown OS} is not Debian 12 (bookworm)," \
         "whose non-free archive carries nsight-systems 2022.4" >&2
    how_to; exit 3
fi

if [[ ! -f "$NONFREE_SOURCE" ]]; then
    echo "[nsys] adding Debian's contrib/non-free components: $NONFREE_SOURCE"
    cat >"$NONFREE_SOURCE" <<'EOF'
# Added by llm-infra-learning `make nsys`: Nsight Systems 2022.4 lives in Debian's non-free.
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: contrib non-free
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
fi

export DEBIAN_FRONTEND=noninteractive
# Never prompt: no terminal questions (noninteractive, -y), and wait for another apt's lock
# instead of failing at once.
APT=(apt-get -q -o DPkg::Lock::Timeout=120 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
echo "[nsys] apt-get update"
if ! "${APT[@]}" update >/dev/null; then
    echo "[nsys] apt-get update failed (see above)" >&2; how_to; exit 4
fi
pkgs=(nsight-systems nsight-systems-target)
[[ "${NSYS_UI:-0}" == 1 ]] && pkgs+=(xvfb xdotool x11-apps imagemagick)
echo "[nsys] apt-get install ${pkgs[*]} (about 1 min, ~600 MB)"
if ! "${APT[@]}" install -y --no-install-recommends "${pkgs[@]}" >/dev/null; then
    echo "[nsys] apt-get install ${pkgs[*]} failed (see above)" >&2; how_to; exit 4
fi
if ! command -v nsys >/dev/null || ! have_importer; then
    echo "[nsys] installed ${pkgs[*]} but nsys or QdstrmImporter is still missing" >&2; exit 4
fi
echo "[nsys] installed: $(nsys --version 2>/dev/null | head -1) ($(command -v nsys))"
