#!/usr/bin/env bash
# wb-passthrough: FLY_API_TOKEN FLY_ACCESS_TOKEN FLY_ORG WB_FLY_CONFIG WB_FLY_DOCKERFILE
# wb-artifacts: fly-toml
# wb-cli: flyctl|fly
#
# Fly.io recipe: deploys the engine image as one Fly Machine with one volume.
#
# Fly is a preference, not a privileged target: this file uses exactly the
# contract every recipe gets (see ../_recipe.sh and ../README.md) and nothing
# in the kit knows about Fly beyond the directory name.
#
# The line above lists the credentials the kit passes through its cleared
# environment when they are set: flyctl reads FLY_ACCESS_TOKEN, then
# FLY_API_TOKEN, then access_token in ~/.fly/config.yml (`fly auth login`).
#
# Inputs beyond the common ones:
#   WB_FLY_TOML        fly.toml rendered by the kit (mounts "wbdata" at WB_DATA)
#   WB_FLY_CONFIG      optional: deploy with this fly.toml instead, building
#                      the app as that file says (no --image)
#   WB_FLY_DOCKERFILE  optional: build this Dockerfile with flyctl instead of
#                      deploying WB_IMAGE; the build context is the directory
#                      the recipe runs in
#   UPDATE=1           optional: re-apply to an app that already exists. The
#                      app and its wbdata volume must exist (the recipe refuses
#                      to create either, so a mistyped name cannot start an
#                      empty app) and `fly deploy --update-only` only updates
#                      the existing Machines, never creating new ones.
#   FLY_ORG            optional: organization slug for `fly apps create --org`.
#                      The kit only passes the passthrough names above, so it
#                      arrives only when the recipe is run by hand; without it
#                      flyctl picks the account's personal organization when
#                      that is the only one, and otherwise fails with
#                      "org slug must be specified when not running
#                      interactively" (no app is created).
#
# Commands follow flyctl's documented flags (fly.io/docs/flyctl/*). Every
# flyctl call is non-interactive: `--yes` where flyctl would prompt.

set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../_recipe.sh
source "$WB_PROVIDERS_DIR/_recipe.sh"

WB_RECIPE_PLACE=fly

# Prefer `flyctl`: `fly` is also the name of Concourse CI's command line tool.
if command -v flyctl >/dev/null; then
  FLY=flyctl
elif command -v fly >/dev/null; then
  FLY=fly
else
  wb_die "flyctl is not on PATH; install it from https://fly.io/docs/flyctl/install/ and log in with 'flyctl auth login' (or set FLY_API_TOKEN)"
fi

# The Fly volume that holds WB_DATA; fly.toml mounts it as [mounts] source.
FLY_VOLUME=wbdata
FLY_VOLUME_SIZE_GB=1

case ${UPDATE:-} in
  "" | 0 | 1) ;;
  *) wb_die "UPDATE must be 1 or 0 (got '$UPDATE')" ;;
esac

if [[ -n ${WB_REGION:-} && ! $WB_REGION =~ ^[a-z0-9]+$ ]]; then
  wb_die "WB_REGION '$WB_REGION' is not a Fly region code (see 'fly platform regions')"
fi

_fly_update_mode() {
  [[ ${UPDATE:-} == 1 ]]
}

# _fly_app_state: set FLY_APP_STATE to "present" or "absent" from
# `fly status`. Any failure other than flyctl's app-not-found error (not
# logged in, network, permissions) stops the run with flyctl's exit code, so
# an unknown state never leads to a create attempt.
_fly_app_state() {
  local err rc=0
  err=$("$FLY" status -a "$WB_APP_NAME" 2>&1 >/dev/null) || rc=$?
  if ((rc == 0)); then
    FLY_APP_STATE=present
  elif [[ $err == *'Could not find App'* || $err == *'Could not resolve App'* ]]; then
    FLY_APP_STATE=absent
  else
    printf '%s\n' "$err" >&2
    wb_say "'$FLY status -a $WB_APP_NAME' failed (exit $rc) for a reason other than a missing app"
    exit "$rc"
  fi
}

provider_ensure_app() {
  local -a org=()
  wb_require WB_APP_NAME
  _fly_app_state
  if [[ $FLY_APP_STATE == present ]]; then
    wb_say "app $WB_APP_NAME exists"
    return 0
  fi
  if _fly_update_mode; then
    wb_die "UPDATE=1 but app $WB_APP_NAME does not exist; unset UPDATE to create it"
  fi
  if [[ -n ${FLY_ORG:-} ]]; then
    org=(--org "$FLY_ORG")
  fi
  wb_say "creating app $WB_APP_NAME"
  "$FLY" apps create "$WB_APP_NAME" ${org[@]+"${org[@]}"}
}

provider_set_secrets() {
  wb_require WB_APP_NAME
  # The values travel on stdin only; --stage stores them without restarting
  # Machines, so `secrets` never deploys and `up` deploys once, afterwards.
  wb_engine_dotenv | "$FLY" secrets import --stage -a "$WB_APP_NAME"
}

# _fly_volume_present JSON NAME REGION: set FLY_VOLUME_PRESENT to yes or no
# from `fly volumes list --json` output (an array of flat objects, one per
# volume). Volumes being destroyed do not count.
_fly_volume_present() {
  local flat=${1//$'\n'/ } chunk
  local re_name="\"name\"[[:space:]]*:[[:space:]]*\"$2\""
  local re_region="\"region\"[[:space:]]*:[[:space:]]*\"$3\""
  local re_gone='"state"[[:space:]]*:[[:space:]]*"(pending_destroy|destroying|destroyed)"'
  FLY_VOLUME_PRESENT=no
  if [[ $flat =~ ^[[:space:]]*null[[:space:]]*$ ]]; then
    return 0
  fi
  if ! [[ $flat =~ ^[[:space:]]*\[.*\][[:space:]]*$ ]]; then
    wb_die "'$FLY volumes list --json' did not print a JSON array; refusing to guess whether $2 exists"
  fi
  while [[ $flat == *'}'* ]]; do
    chunk=${flat%%\}*}
    flat=${flat#*\}}
    if [[ $chunk =~ $re_name && $chunk =~ $re_region && ! $chunk =~ $re_gone ]]; then
      FLY_VOLUME_PRESENT=yes
      return 0
    fi
  done
}

provider_attach_volume() {
  local json
  wb_require WB_APP_NAME
  if [[ -z ${WB_REGION:-} ]]; then
    wb_die "WB_REGION is empty; a Fly volume lives in one region, so the deployment must name it"
  fi
  json=$("$FLY" volumes list -a "$WB_APP_NAME" --json)
  _fly_volume_present "$json" "$FLY_VOLUME" "$WB_REGION"
  if [[ $FLY_VOLUME_PRESENT == yes ]]; then
    wb_say "volume $FLY_VOLUME exists in $WB_REGION"
    return 0
  fi
  if _fly_update_mode; then
    wb_die "UPDATE=1 but app $WB_APP_NAME has no $FLY_VOLUME volume in $WB_REGION; unset UPDATE to create it"
  fi
  wb_say "creating volume $FLY_VOLUME (${FLY_VOLUME_SIZE_GB} GB) in $WB_REGION"
  "$FLY" volumes create "$FLY_VOLUME" --size "$FLY_VOLUME_SIZE_GB" \
    --region "$WB_REGION" -a "$WB_APP_NAME" --yes
}

provider_deploy_image() {
  local config
  local -a args
  wb_require WB_APP_NAME
  config=${WB_FLY_CONFIG:-${WB_FLY_TOML:-}}
  if [[ -z $config ]]; then
    wb_die "WB_FLY_TOML is not set; the kit renders fly.toml for every Fly run"
  fi
  if [[ ! -f $config ]]; then
    wb_die "fly config $config does not exist"
  fi

  # --ha=false: one Machine, matching the single wbdata volume.
  # --yes: accept flyctl's confirmations; there is no terminal.
  args=(deploy -a "$WB_APP_NAME" --config "$config" --ha=false --yes)
  if [[ -n ${WB_REGION:-} ]]; then
    # Machines go where the volume is, whatever the config file says.
    args+=(--region "$WB_REGION")
  fi
  if [[ -n ${WB_FLY_DOCKERFILE:-} ]]; then
    if [[ ! -f $WB_FLY_DOCKERFILE ]]; then
      wb_die "WB_FLY_DOCKERFILE $WB_FLY_DOCKERFILE does not exist"
    fi
    args+=(--dockerfile "$WB_FLY_DOCKERFILE")
  elif [[ -z ${WB_FLY_CONFIG:-} ]]; then
    args+=(--image "$WB_IMAGE")
  fi
  if _fly_update_mode; then
    args+=(--update-only)
  fi
  "$FLY" "${args[@]}"
}

provider_public_url() {
  wb_require WB_APP_NAME
  printf 'https://%s.fly.dev\n' "$WB_APP_NAME"
}

provider_down() {
  wb_require WB_APP_NAME
  _fly_app_state
  if [[ $FLY_APP_STATE == absent ]]; then
    wb_say "app $WB_APP_NAME does not exist; nothing to destroy"
    return 0
  fi
  "$FLY" apps destroy "$WB_APP_NAME" --yes
}

provider_status() {
  wb_require WB_APP_NAME
  "$FLY" status -a "$WB_APP_NAME"
}

provider_logs() {
  wb_require WB_APP_NAME
  "$FLY" logs -a "$WB_APP_NAME" --no-tail
}

wb_recipe_run
