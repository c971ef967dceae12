#!/usr/bin/env bash
# On a lent GPU machine (the device tool runs this in the repository root, after tools/device/prepare.sh here
# and with .device carried): the gpu scale of the four papers, one paper at a time, within SECONDS
# (default 540, inside the tool's 600-s limit per command). A paper that does not finish in what is left
# is stopped and has no report; the finished ones, the log and the environment come back in $OUT as
# reproductions-gpu.tgz (extract into docs/reproductions-gpu) and gpu_scale.log.
# Usage: bash tools/device/gpu_scale.sh [SECONDS] [PAPER ...]   (papers default: multiception dxnet xsepconv wae)
# Runs live in runs/gpu (kept on a warm machine: a second call resumes them). SCALE (default gpu), EXTRA_ARGS
# (more reproduce arguments), PACK, DATA, REPORTS and RUNS (paths) are for a rehearsal here, on the CPU:
#   SCALE=smoke bash tools/device/gpu_scale.sh 300
set -uo pipefail
budget="${1:-540}"
if [ $# -gt 1 ]; then shift; papers=("$@"); else papers=(multiception dxnet xsepconv wae); fi
out="${OUT:-/tmp/gpu-scale-out}"; mkdir -p "$out"
log="$out/gpu_scale.log"
exec > >(tee "$log") 2>&1
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg LEANNETS_CACHE=/tmp/leannets-cache
if ! python3 -c "import pywt" 2>/dev/null; then
  # the wheel of this Python (prepare.sh carries 3.10-3.13); no index here, and its one dependency (numpy) is in the
  # image, so --no-deps: the import below checks that the pair works
  cp=$(python3 -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
  wheel=$(ls .device/pywavelets-*-"$cp"-*.whl 2>/dev/null | head -1)
  [ -n "$wheel" ] || { echo "gpu_scale: no PyWavelets wheel for $cp in .device (run tools/device/prepare.sh)"; exit 2; }
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$wheel" \
    || { echo "gpu_scale: cannot install $wheel"; exit 2; }
fi
export PYTHONPATH="/tmp/site:$PWD"
python3 -c "import pywt" || { echo "gpu_scale: PyWavelets does not import with this image's numpy"; exit 2; }
python3 -c "import torch, leannets; print('torch', torch.__version__, '| cuda', torch.cuda.is_available(),
torch.cuda.get_device_name(0) if torch.cuda.is_available() else '-')" || exit 2
if [ "${SCALE:-gpu}" = gpu ] && [ -z "${REHEARSE:-}" ] \
    && ! python3 -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_scale: CUDA is not available here: stopping rather than training the gpu scale on the CPU" \
    "(REHEARSE=1 runs it anyway, as a rehearsal)"; exit 2
fi
data="${DATA:-/tmp/leannets-data}"
[ -d "$data/cifar10-jpeg" ] || python3 tools/device/pack_folder.py unpack "${PACK:-.device/cifar10-jpeg.npz}" \
  "$data/cifar10-jpeg" || exit 2
reports="${REPORTS:-/tmp/reproductions-gpu}"; mkdir -p "$reports"
for paper in "${papers[@]}"; do
  left=$((budget - SECONDS - 20))  # 20 s kept for packing the reports
  if [ "$left" -lt 60 ]; then echo "gpu_scale: $paper skipped (${left}s left)"; continue; fi
  echo "== $paper (${left}s left) =="
  t0=$SECONDS
  timeout "$left" python3 -m leannets.cli reproduce "$paper" --scale "${SCALE:-gpu}" --data-root "$data" --jobs 6 \
    --threads 2 --runs "${RUNS:-runs/gpu}" --out "$reports/$paper" ${EXTRA_ARGS:-}
  echo "== $paper: exit $?, $((SECONDS - t0)) s =="
done
python3 - "$reports" "$budget" <<'PY'
import json, sys
from pathlib import Path
from leannets.commands.reproduce import write_index
from leannets.reproduce import PAPERS
root = Path(sys.argv[1])
docs = [json.loads((root / p / "results.json").read_text()) for p in PAPERS if (root / p / "results.json").is_file()]
if docs:
    print("index:", write_index(root, docs, f"bash tools/device/gpu_scale.sh {sys.argv[2]}"))
PY
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv 2>/dev/null || true
tar czf "$out/reproductions-gpu.tgz" -C "$reports" . && ls -la "$out"
