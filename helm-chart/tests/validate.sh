#!/usr/bin/env bash
# Validates the Helm chart without a helm binary:
#   1. helm-python-sdk (Helm 4's own library) lints the chart, renders every
#      tests/good-*.yaml (schema-checked, as `helm install` would) and must
#      reject every tests/bad-*.yaml;
#   2. tests/check_chart.py asserts what the chart promises (hook Job, pod
#      security, Secret files 0440, no database URL in env, probes, PDB, …);
#   3. kubernetes-validate --strict checks each rendered manifest against the
#      Kubernetes 1.30.0 and 1.27.0 schemas.
# Tools live in a venv outside the repository: $MOGOTHROW77_TOOLS, default
# ${XDG_CACHE_HOME:-$HOME/.cache}/mogothrow77-tools. Needs only PyPI, once.
set -euo pipefail

HELM_PYTHON_SDK_VERSION=0.2.2
KUBERNETES_VALIDATE_VERSION=1.37.0
KUBE_VERSIONS=(1.30.0 1.27.0)

started=$(date +%s%N)
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
chart=$(dirname "$here")
tools=${MOGOTHROW77_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/mogothrow77-tools}

if [ ! -x "$tools/bin/python" ]; then
    echo "creating the tools venv $tools"
    python3 -m venv "$tools"
fi
py=$tools/bin/python
if ! "$py" - "$HELM_PYTHON_SDK_VERSION" "$KUBERNETES_VALIDATE_VERSION" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
import helm_python, kubernetes_validate  # noqa: F401
sys.exit(0 if (version("helm-python-sdk"), version("kubernetes-validate")) == tuple(sys.argv[1:]) else 1)
PY
then
    echo "installing helm-python-sdk==$HELM_PYTHON_SDK_VERSION kubernetes-validate==$KUBERNETES_VALIDATE_VERSION into $tools"
    "$py" -m pip install --quiet --disable-pip-version-check \
        "helm-python-sdk==$HELM_PYTHON_SDK_VERSION" "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

status=0
shopt -s nullglob
echo "== lint, render, schema and property checks ($("$py" -c 'import helm_python as h; print("Helm", h.helm_sdk_version())'))"
"$py" "$here/check_chart.py" "$chart" "$out" || status=1

echo "== kubernetes-validate --strict $KUBERNETES_VALIDATE_VERSION"
for case_dir in "$out"/*/; do
    for k in "${KUBE_VERSIONS[@]}"; do
        if "$tools/bin/kubernetes-validate" --strict --quiet -k "$k" "$case_dir"*.yaml; then
            echo "ok    $(basename "$case_dir"): $(ls "$case_dir" | wc -l) manifest file(s) valid for Kubernetes $k"
        else
            echo "FAIL  $(basename "$case_dir"): manifests invalid for Kubernetes $k"
            status=1
        fi
    done
done

elapsed=$(( ($(date +%s%N) - started) / 1000000 ))
if [ "$status" -eq 0 ]; then
    printf 'helm chart: all checks passed in %d.%03d s\n' $((elapsed / 1000)) $((elapsed % 1000))
else
    printf 'helm chart: FAILED after %d.%03d s\n' $((elapsed / 1000)) $((elapsed % 1000)) >&2
fi
exit "$status"
