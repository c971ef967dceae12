#!/usr/bin/env bash
# Here, before a device run: put what the device lacks into the ignored folder .device/ (≈ 59 MiB, under the
# device tool's 64 MiB): the whole CIFAR-10 (JPEG class folders) as one pack, and a PyWavelets wheel for the
# device's Python 3.12 (its image has torch, numpy, scipy, scikit-image, matplotlib, yaml, tqdm; not pywt).
# Usage: bash tools/device/prepare.sh [DATA_ROOT]   (default ../shared/data)
set -euo pipefail
cd "$(dirname "$0")/../.."
data_root="${1:-../shared/data}"
mkdir -p .device
if [ ! -s .device/cifar10-jpeg.npz ]; then
  python tools/device/pack_folder.py pack "$data_root/cifar10-jpeg" .device/cifar10-jpeg.npz
fi
if ! ls .device/pywavelets-*.whl >/dev/null 2>&1; then
  python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .device PyWavelets
fi
du -ch .device/* | tail -1
echo "next: the device tool's run with carry [\".device\"] and command 'bash tools/device/gpu_scale.sh 540'"
