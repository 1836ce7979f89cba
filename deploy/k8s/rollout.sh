#!/usr/bin/env bash
# A rollout in the order the schema needs: settings, then the migration job (schema, topics,
# app role), waited for, then the services. A failed migration stops here, before any pod
# runs code that expects the new schema.
#
#   deploy/k8s/rollout.sh [IMAGE_TAG]     (kubectl's current context and namespace)
#
# The Secret exammentor-secrets must exist (docs/operations.md, "Deployment").
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tag="${1:-0.1.0}"

kubectl get secret exammentor-secrets >/dev/null
kubectl apply -f "$here/config.yaml"
kubectl delete job exammentor-migrate --ignore-not-found --wait=true
sed "s|image: exammentor:0.1.0|image: exammentor:$tag|" "$here/migrate-job.yaml" | kubectl apply -f -
if ! kubectl wait --for=condition=complete job/exammentor-migrate --timeout=15m; then
  kubectl logs job/exammentor-migrate --tail=100 >&2 || true
  echo "migration failed: the services were not rolled out" >&2
  exit 1
fi
kubectl kustomize "$here" | sed "s|image: exammentor:0.1.0|image: exammentor:$tag|" | kubectl apply -f -
for name in gateway planner tutor quiz autopilot; do
  kubectl rollout status "deployment/exammentor-$name" --timeout=10m
done
