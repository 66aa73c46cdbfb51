#!/usr/bin/env bash
# Creates .venv and installs dynarep with everything it needs, on a fresh Debian machine.
# torch goes first, pinned, so that nothing later pulls a CUDA build; Debian's EGL/Mesa packages
# are installed only when missing (headless MuJoCo rendering on the CPU goes through them), and so
# are jemalloc (dynarep trains about 1.3x faster under it, see src/dynarep/runtime.py) and
# Debian's Chromium, in which the tests open the HTML report.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}

need=()
for pkg in libegl1 libegl-mesa0 libgl1 libgl1-mesa-dri libglx-mesa0 libjemalloc2 chromium; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing Debian packages (headless rendering, jemalloc, Chromium): ${need[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=".venv/bin/python -m pip"
$PIP install -q --disable-pip-version-check "torch==${TORCH_VERSION}"
$PIP install -q --disable-pip-version-check -e ".[all]"
touch .venv/.installed
echo "setup: ready (.venv)"
