#!/usr/bin/env bash
# wb-artifacts: k8s-manifests
# wb-passthrough: KUBECONFIG WB_K8S_ROLLOUT_TIMEOUT
# wb-cli: kubectl
# wb-properties: NAMESPACE:dns-label CONTEXT DOMAIN:hostname INGRESS_CLASS:hostname
# wb-requires: APP
# wb-supports: SCALE SIZE STRATEGY
#
# Kubernetes (SPEC §13.4): kubectl against the current kube context or CONTEXT.
# The kit renders the non-secret objects (WB_K8S_MANIFESTS, a JSON List); this
# file makes the namespace and the engine's Secret — values base64 on a pipe into
# `kubectl apply --server-side -f -`, never argv or disk, and no last-applied
# annotation copy — then applies them. Properties arrive as WB_PROP_<KEY>.
# WB_K8S_ROLLOUT_TIMEOUT (seconds, default 180) bounds `rollout status`.

set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../_recipe.sh
source "$WB_PROVIDERS_DIR/_recipe.sh"
WB_RECIPE_PLACE=k8s

APP=${WB_APP_NAME:?the k8s recipe needs APP}
NS=${WB_PROP_NAMESPACE:-default}
SECRET="$APP-engine-env"
kc() {
  if [[ -n ${WB_PROP_CONTEXT:-} ]]; then
    kubectl --context "$WB_PROP_CONTEXT" --namespace "$NS" "$@"
  else
    kubectl --namespace "$NS" "$@"
  fi
}

# A Secret carries any bytes: nothing to refuse (the dotenv rules do not apply).
provider_check_env() { :; }

provider_ensure_app() {
  if [[ -z $(kc get namespace "$NS" --ignore-not-found -o name) ]]; then
    kc create namespace "$NS"
  fi
}

# The Secret as JSON on stdout: names are [A-Z0-9_] (checked by the kit and
# the spine), values base64 through a pipe (printf is a builtin: no argv).
secret_json() {
  local entry sep=""
  printf '{"apiVersion":"v1","kind":"Secret","type":"Opaque","metadata":{"name":"%s","namespace":"%s","labels":{"app.kubernetes.io/name":"%s","app.kubernetes.io/managed-by":"wb-deploy"}},"data":{' \
    "$SECRET" "$NS" "$APP"
  for entry in "${WB_ENGINE_ENV[@]}"; do
    printf '%s"%s":"' "$sep" "${entry%%=*}"
    printf '%s' "${entry#*=}" | base64 | tr -d '\n'
    printf '"'
    sep=,
  done
  printf '}}\n'
}

provider_set_secrets() {
  secret_json | kc apply --server-side --field-manager=wb-deploy --force-conflicts -f -
}

provider_attach_volume() { :; } # the claim is in the rendered manifests

# The pod template's env digest: the kit's WB_ENV_DIGEST when it sends one,
# else the Secret's resourceVersion (it changes exactly when a value does, and
# says nothing about the values).
env_digest() {
  if [[ -n ${WB_ENV_DIGEST:-} ]]; then
    printf '%s' "$WB_ENV_DIGEST"
  else
    kc get secret "$SECRET" -o 'jsonpath={.metadata.resourceVersion}'
  fi
}

provider_deploy_image() {
  local digest rc=0
  wb_require WB_K8S_MANIFESTS
  digest=$(env_digest)
  [[ $digest =~ ^[A-Za-z0-9._-]+$ ]] || wb_die "the env digest is not a plain token"
  sed "s/@WB_ENV_DIGEST@/$digest/" "$WB_K8S_MANIFESTS" |
    kc apply --server-side --field-manager=wb-deploy --force-conflicts -f -
  kc rollout status "deployment/$APP" --timeout="${WB_K8S_ROLLOUT_TIMEOUT:-180}s" || rc=$?
  if ((rc != 0)); then
    wb_say "deployment/$APP did not become ready; the last events in namespace $NS:"
    kc get events --sort-by=.lastTimestamp >&2 || wb_say "(the events could not be read)"
    wb_say "see also: kubectl --namespace $NS describe pods -l app.kubernetes.io/name=$APP"
    return "$rc"
  fi
}

provider_public_url() {
  if [[ -n ${WB_PROP_DOMAIN:-} ]]; then
    printf 'https://%s\n' "$WB_PROP_DOMAIN"
  else
    printf 'http://%s.%s.svc.cluster.local\n' "$APP" "$NS"
  fi
}

provider_down() {
  kc delete "deployment/$APP" "service/$APP" "ingress/$APP" \
    "poddisruptionbudget/$APP" --ignore-not-found --wait=false >&2
  printf 'destroyed: deployment, service, ingress and disruption budget %s (namespace %s)\n' "$APP" "$NS"
  if [[ ${WB_PURGE:-} == 1 ]]; then
    kc delete "persistentvolumeclaim/$APP-data" "secret/$SECRET" --ignore-not-found --wait=false >&2
    printf 'destroyed: volume claim %s-data and secret %s\n' "$APP" "$SECRET"
  else
    printf 'kept: volume claim %s-data (the data) and secret %s — down --purge --yes deletes them\n' "$APP" "$SECRET"
  fi
}

provider_status() {
  local out image ready
  out=$(kc get deployment "$APP" --ignore-not-found \
    -o 'jsonpath={.spec.template.spec.containers[0].image} {.status.readyReplicas}')
  if [[ -z $out ]]; then
    printf 'state: {"present": false, "image": null, "instances": 0, "regions": []}\n'
    return 0
  fi
  image=${out%% *}
  ready=${out#* }
  printf 'state: {"present": true, "image": "%s", "instances": %s, "regions": []}\n' \
    "$image" "${ready:-0}"
}

provider_logs() { kc logs "deployment/$APP" --tail=200; }

wb_recipe_run "$@"
