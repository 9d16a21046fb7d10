#!/usr/bin/env bash
# The accelerator check (benchmarks/gpu_check.py), as one command on a lent GPU machine that
# has PyTorch, scikit-learn, pandas, pluggy, tqdm, PyYAML and matplotlib but no MLflow and no
# package index.
#
#   benchmarks/gpu_check.sh --prepare        where pip reaches an index: download the wheels
#                                            of MLflow and of what it needs beyond those
#                                            packages into .whl/ (about 40 MiB, to travel
#                                            with the working tree)
#   benchmarks/gpu_check.sh OUT [MINUTES]    on the GPU machine: install this project and,
#                                            from .whl/, whatever of MLflow is missing into a
#                                            virtual environment over the system packages,
#                                            then run the check (8 minutes unless told)
#   benchmarks/gpu_check.sh --dry-run OUT    the same on the CPU at toy sizes (what the test
#                                            suite runs): no wheels, no GPU
set -euo pipefail
cd "$(dirname "$0")/.."

# The packages the GPU machine brings (and what they need), left out of .whl/.
PRESENT="numpy scipy pandas pyarrow scikit-learn joblib threadpoolctl matplotlib contourpy
cycler fonttools kiwisolver pillow pyparsing python-dateutil pytz tzdata six packaging
pluggy tqdm pyyaml torch requests urllib3 idna certifi charset-normalizer jinja2
markupsafe click cloudpickle protobuf werkzeug typing-extensions zipp anyio h11 sniffio
markdown"

case "${1:-}" in
--prepare)
    version=$(python3 -c "import mlflow; print(mlflow.__version__)" 2>/dev/null || echo "")
    spec="mlflow${version:+==$version}"
    rm -rf .whl && mkdir -p .whl
    python3 -m pip download -q --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform any -d .whl "$spec"
    for wheel in .whl/*.whl; do
        name=$(basename "$wheel" | cut -d- -f1 | tr '[:upper:]_.' '[:lower:]--')
        for present in $PRESENT; do
            if [ "$name" = "$present" ]; then rm "$wheel"; fi
        done
    done
    echo "$(find .whl -name '*.whl' | wc -l) wheels for $spec in .whl/ ($(du -sh .whl | cut -f1))"
    exit 0 ;;
--dry-run)
    out=${2:?usage: gpu_check.sh --dry-run OUT}
    exec env PYTHONUNBUFFERED=1 python3 benchmarks/gpu_check.py --dry-run --out "$out" --minutes 0.2 ;;
"" | -*)
    echo "usage: gpu_check.sh --prepare | OUT [MINUTES] | --dry-run OUT" >&2
    exit 2 ;;
esac

out=$1
minutes=${2:-8}
python=python3
if ! python3 -c "import disentangle, mlflow" 2>/dev/null; then
    python3 -m venv --system-site-packages /tmp/gpu_check_env
    python=/tmp/gpu_check_env/bin/python
    # pip takes from .whl/ only what the system packages do not already satisfy
    "$python" -m pip install -q --no-index --find-links .whl --no-build-isolation \
        --no-cache-dir -e . \
        || { echo "could not install the project and MLflow: run --prepare first" >&2; exit 1; }
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
exec env PYTHONUNBUFFERED=1 "$python" benchmarks/gpu_check.py --out "$out" --minutes "$minutes"
