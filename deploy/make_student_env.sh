#!/usr/bin/env bash
# A student's Python environment for the FaceNet course: fr_utils from a freshly
# built wheel (no repository, no solutions, no hidden tests), ipykernel and what
# the notebooks import, pinned from requirements.txt, and the encoder's weights.
#
#   deploy/make_student_env.sh VENV_DIR [--kernel NAME [--kernel-prefix DIR]]
#                              [--weights-from DIR] [--python PYTHON]
#
#   VENV_DIR            the virtual environment to create (or update)
#   --kernel NAME       also register a Jupyter kernelspec NAME running VENV_DIR's python
#                       (in DIR/share/jupyter/kernels with --kernel-prefix DIR, else in
#                       VENV_DIR/share/jupyter/kernels)
#   --weights-from DIR  copy the built weights from DIR (default: where the repository's
#                       environment finds them; built from the registry package when none)
#   --python PYTHON     the interpreter for the new environment (default: python3; 3.11)
#
# The weights go to VENV_DIR/share/fr_utils/weights, a folder fr_utils searches after
# $FR_WEIGHTS_DIR and the per-user folder (see `python -m fr_utils.weights where`), so
# every user of the environment finds them without any setting.
# Needs the package index (or pip's cache) for the dependencies; nothing else.
set -euo pipefail

usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

VENV="" KERNEL="" KERNEL_PREFIX="" WEIGHTS_FROM="" PY="${PYTHON:-python3}"
while [ $# -gt 0 ]; do
    case "$1" in
        --kernel) KERNEL="${2:?--kernel needs a name}"; shift 2 ;;
        --kernel-prefix) KERNEL_PREFIX="${2:?--kernel-prefix needs a folder}"; shift 2 ;;
        --weights-from) WEIGHTS_FROM="${2:?--weights-from needs a folder}"; shift 2 ;;
        --python) PY="${2:?--python needs an interpreter}"; shift 2 ;;
        -h|--help) usage ;;
        -*) echo "make_student_env.sh: unknown option $1" >&2; usage ;;
        *) [ -z "$VENV" ] || { echo "make_student_env.sh: one VENV_DIR only (got $VENV and $1)" >&2; usage; }
           VENV="$1"; shift ;;
    esac
done
[ -n "$VENV" ] || { echo "make_student_env.sh: VENV_DIR missing" >&2; usage; }
command -v "$PY" >/dev/null || { echo "make_student_env.sh: no interpreter $PY" >&2; exit 2; }

REPO="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$VENV"
VENV="$(cd "$VENV" && pwd)"
case "$VENV/" in "$REPO"/*) echo "make_student_env.sh: $VENV is inside the repository; choose a folder outside it" >&2; exit 2 ;; esac
# The instructor's environment builds the wheel (setuptools already there: no download).
HOST_PY="$REPO/.venv/bin/python"
[ -x "$HOST_PY" ] || HOST_PY="$PY"
CONSTRAINTS="$REPO/requirements.txt"
start=$(date +%s)
step() { echo "[make_student_env $(( $(date +%s) - start ))s] $*"; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

step "building the fr_utils wheel from $REPO"
if "$HOST_PY" -c "import setuptools, wheel" 2>/dev/null; then
    "$HOST_PY" -m pip wheel --quiet --no-deps --no-build-isolation -w "$tmp" "$REPO"
else
    "$HOST_PY" -m pip wheel --quiet --no-deps -w "$tmp" "$REPO"
fi
wheel="$(ls "$tmp"/fr_utils-*.whl)"

step "creating $VENV"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
# ipykernel for the notebooks, ipywidgets (and the wheel's anywidget) for beyond's camera; every version pinned by requirements.txt.
step "installing $(basename "$wheel"), ipykernel and ipywidgets (pinned by requirements.txt)"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    -c "$CONSTRAINTS" "$wheel" ipykernel ipywidgets
# The same version number again (a rebuilt wheel): replace fr_utils itself, nothing else.
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps "$wheel"

DEST="$VENV/share/fr_utils/weights"
# Default source: $FR_WEIGHTS_DIR, the repository's weights/ (make weights), the per-user folder.
if [ -z "$WEIGHTS_FROM" ]; then
    for d in ${FR_WEIGHTS_DIR:+"$FR_WEIGHTS_DIR"} "$REPO/weights" "${XDG_DATA_HOME:-$HOME/.local/share}/fr_utils/weights"; do
        if ls "$d"/facenet_*.manifest.json >/dev/null 2>&1; then WEIGHTS_FROM="$d"; break; fi
    done
fi
mkdir -p "$DEST"
if [ -n "$WEIGHTS_FROM" ]; then
    step "copying the weights from $WEIGHTS_FROM to $DEST"
    for f in "$WEIGHTS_FROM"/facenet_*.weights.h5 "$WEIGHTS_FROM"/facenet_*.manifest.json; do
        [ -f "$f" ] || { echo "make_student_env.sh: no built weights in $WEIGHTS_FROM ($f)" >&2; exit 1; }
        cp "$f" "$DEST/"
    done
else
    step "building the weights into $DEST (python -m fr_utils.weights build)"
    (cd "$tmp" && "$VENV/bin/python" -m fr_utils.weights build --out "$DEST")
fi
# The distilled OpenFace nn4.small2 is committed in the repository's weights/ (not built).
for f in "$REPO"/weights/openface_nn4_small2_distilled.weights.h5 "$REPO"/weights/openface_nn4_small2_distilled.manifest.json; do
    [ -f "$f" ] || { echo "make_student_env.sh: $f is missing (it is committed in the repository)" >&2; exit 1; }
    cp "$f" "$DEST/"
done
chmod -R a+rX "$VENV/share/fr_utils"
# Checked from outside the repository, by the student environment itself, with no setting.
(cd "$tmp" && env -u FR_WEIGHTS_DIR -u PYTHONPATH "$VENV/bin/python" -m fr_utils.weights verify --dir "$DEST")

if [ -n "$KERNEL" ]; then
    step "registering the kernel $KERNEL"
    (cd "$tmp" && "$VENV/bin/python" -m ipykernel install --name "$KERNEL" \
        --display-name "Python 3 (FaceNet course)" --prefix "${KERNEL_PREFIX:-$VENV}")
fi
step "done: $VENV (python $("$VENV/bin/python" -c 'import sys; print(sys.version.split()[0])'), fr_utils from $(basename "$wheel"), weights in $DEST)"
