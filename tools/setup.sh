#!/usr/bin/env bash
# One-step, idempotent set-up of TrickBench on a fresh machine (CPU or GPU).
#
#   bash tools/setup.sh          # creates .venv and installs everything pinned in pyproject.toml
#
# mmcv 2.1.0 has no wheel on the package index; it is built from its sdist with
# its compiled ops (about 11 minutes on 2 cores) and the wheel is cached outside
# the checkout, keyed by mmcv, Python, torch and the CUDA ops setting, so later
# runs install it in seconds. pip's own wheel cache is not used for it: it is
# not keyed by the torch version and would hand back a wheel that fails at
# import with "undefined symbol" (see ../shared/REFERENCE.md, section 3).
#
# Environment:
#   TRICKBENCH_VENV   where the virtual environment goes     (default: <repo>/.venv)
#   TRICKBENCH_CACHE  where built wheels are cached          (default: ~/.cache/trickbench)
#   PYTHON            interpreter for the venv (3.11 or 3.12; default: python3)
#   FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=9.0   build mmcv's CUDA ops (GPU clusters)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${TRICKBENCH_VENV:-$ROOT/.venv}
CACHE=${TRICKBENCH_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/trickbench}
PYTHON=${PYTHON:-python3}
STAMP=$VENV/.trickbench-setup

log() { printf '[setup] %s\n' "$*" >&2; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

# What the environment must match: the pins, this script, and the CUDA-ops choice.
want=$(cat "$ROOT/pyproject.toml" "$ROOT/tools/setup.sh" | sha256sum | cut -c1-16)-cuda${FORCE_CUDA:-0}

check() {  # the promise of set-up: the compiled ops import, and the downstream libraries with them
  "$VENV/bin/python" - <<'PY'
import mmcv, mmcv.ops, mmdet, mmseg, mmengine, torch, torchvision
from mmcv.ops import nms, RoIAlign  # compiled ops used by Faster R-CNN
print(f"[setup] ok: torch {torch.__version__}, torchvision {torchvision.__version__}, mmcv {mmcv.__version__} "
      f"(ops compiled), mmengine {mmengine.__version__}, mmdet {mmdet.__version__}, mmseg {mmseg.__version__}")
PY
}

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && check 2>/dev/null; then
  exit 0
fi

command -v "$PYTHON" >/dev/null || die "no '$PYTHON' on PATH; set PYTHON to a Python 3.11 or 3.12 interpreter"
pyver=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
case $pyver in 3.11|3.12) ;; *) die "Python $pyver found; TrickBench needs 3.11 or 3.12 (set PYTHON=...)";; esac

if [ ! -x "$VENV/bin/python" ]; then
  log "creating virtual environment $VENV (Python $pyver)"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
pip() { "$PY" -m pip --disable-pip-version-check --no-input "$@"; }

# Read a pin from pyproject.toml, so the versions live in one place.
pin() {
  "$PY" - "$ROOT/pyproject.toml" "$1" <<'PY'
import sys, tomllib, re
deps = tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]
for d in deps:
    name = re.split(r"[=<>!~ ;\[]", d, maxsplit=1)[0]
    if name.lower() == sys.argv[2].lower():
        print(d.split(";")[0].strip()); break
else:
    sys.exit(f"{sys.argv[2]} is not pinned in pyproject.toml")
PY
}

log "installing build tools and $(pin torch), $(pin torchvision)"
pip install -q --upgrade pip
# The torch pin keeps pip away from the CPU-only torch file some machines offer,
# with which the index's torchvision fails to import (REFERENCE.md section 3).
pip install -q "$(pin setuptools)" wheel ninja "$(pin torch)" "$(pin torchvision)"

mmcv_pin=$(pin mmcv); mmcv_ver=${mmcv_pin#*==}
key=$("$PY" -c "import sys, torch; print('py%d.%d-torch%s' % (sys.version_info[:2] + (torch.__version__,)))")-ops$([ "${FORCE_CUDA:-0}" = 1 ] && echo "cuda${TORCH_CUDA_ARCH_LIST:-}" | tr -d ' ;.' || echo cpu)
wheeldir=$CACHE/wheels/mmcv-$mmcv_ver/$key
wheel=$(ls "$wheeldir"/mmcv-"$mmcv_ver"-*.whl 2>/dev/null | head -n1 || true)
if [ -z "$wheel" ]; then
  log "building mmcv $mmcv_ver with its ops for $key (about 11 minutes on 2 cores, once per machine)"
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/mmcv-build.XXXXXX")
  MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} \
    pip wheel --no-deps --no-build-isolation --no-binary mmcv --no-cache-dir -w "$tmp" "mmcv==$mmcv_ver" \
    || die "building mmcv $mmcv_ver failed (see above); it needs gcc, the Python headers and torch installed first"
  mkdir -p "$wheeldir"
  built=$(ls "$tmp"/mmcv-*.whl)
  mv "$built" "$wheeldir/$(basename "$built").part"            # atomic publish into the cache
  mv "$wheeldir/$(basename "$built").part" "$wheeldir/$(basename "$built")"
  rm -rf "$tmp"
  wheel=$wheeldir/$(basename "$built")
else
  log "using cached mmcv wheel $wheel"
fi
pip install -q --no-deps --force-reinstall "$wheel"

log "installing TrickBench and the rest of its pins"
pip install -q -e "$ROOT[test,bench]"

check || die "the environment is incomplete: 'import mmcv.ops' or an OpenMMLab import failed (see above). Remove $wheeldir and $VENV and run this again."
echo "$want" > "$STAMP.tmp" && mv "$STAMP.tmp" "$STAMP"
log "ready: $VENV"
