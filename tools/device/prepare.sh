#!/usr/bin/env bash
# Here, before a device run: put what the device lacks into the ignored folder .device/ (≈ 59 MiB, under the
# device tool's 64 MiB): the whole CIFAR-10 (JPEG class folders) as one pack, and PyWavelets wheels for CPython
# 3.10-3.13 (the device image has torch, numpy, scipy, scikit-image, matplotlib, yaml, tqdm, not pywt; which Python
# it runs is only known there, so gpu_scale.sh installs the wheel of its own version).
# Usage: bash tools/device/prepare.sh [DATA_ROOT]   (default ../shared/data)
set -euo pipefail
cd "$(dirname "$0")/../.."
data_root="${1:-../shared/data}"
mkdir -p .device
if [ ! -s .device/cifar10-jpeg.npz ]; then
  python tools/device/pack_folder.py pack "$data_root/cifar10-jpeg" .device/cifar10-jpeg.npz
fi
for py in 3.10 3.11 3.12 3.13; do
  if ! ls .device/pywavelets-*-cp${py/./}-*.whl >/dev/null 2>&1; then
    python -m pip download -q --no-deps --only-binary=:all: --python-version "$py" --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
      --platform manylinux2014_x86_64 -d .device PyWavelets
  fi
done
du -ch .device/* | tail -1
echo "next: the device tool's run with carry [\".device\"] and command 'bash tools/device/gpu_scale.sh 540'"
