#!/usr/bin/env bash
# wb-passthrough: FLY_API_TOKEN FLY_ACCESS_TOKEN FLY_ORG WB_FLY_CONFIG WB_FLY_DOCKERFILE
# wb-artifacts: fly-toml
# wb-cli: flyctl|fly
# wb-requires: APP REGION
# wb-supports: SCALE REGIONS SIZE AUTO_STOP STRATEGY
# wb-readonly: fly version|fly status|fly volumes list|fly secrets list|fly logs
# wb-readonly: flyctl version|flyctl status|flyctl volumes list|flyctl secrets list|flyctl logs
#
# Fly.io recipe: deploys the engine image as one Fly Machine with one volume,
# or as WB_SCALE Machines over WB_REGION + WB_REGIONS without one.
#
# Fly is a preference, not a privileged target: this file uses exactly the
# contract every recipe gets (see ../_recipe.sh and ../README.md) and nothing
# in the kit knows about Fly beyond the directory name.
#
# wb-passthrough lists the credentials the kit passes through its cleared
# environment when they are set: flyctl reads FLY_ACCESS_TOKEN, then
# FLY_API_TOKEN, then access_token in ~/.fly/config.yml (`fly auth login`,
# usable for 30 days after last_login). wb-cli names the CLI the kit looks
# for before `apply` makes anything (the bearer included).
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
#   FLY_ORG            optional: organization slug for `fly apps create --org`
#                      (a passthrough: the kit passes it when set); without it
#                      flyctl picks the account's personal organization when
#                      that is the only one, and otherwise fails with
#                      "org slug must be specified when not running
#                      interactively" (no app is created).
#   WB_PURGE=1         `down` destroys the app with its volume and secrets
#                      (the kit sets it only for `down --purge --yes`); without
#                      it `down` destroys the Machines and keeps the app, the
#                      wbdata volume and the secrets, and the next `up` runs a
#                      new Machine on the same volume.
#   WB_FLY_LOGS_TIMEOUT optional: seconds `logs` waits (default 20; the kit
#                      does not pass it, so it is for runs by hand and tests);
#                      see provider_logs.
#
# Every flyctl call and flag below was checked against flyctl's source
# (superfly/flyctl ad0172fac, v0.4.87; see docs/cloud.md, "Fly: fidelity to
# flyctl"), not its docs. Every call is non-interactive: `--yes` where
# flyctl would prompt.

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

# The oldest flyctl this recipe is known to work with. The secrets parser this
# recipe writes for (internal/command/secrets/parser.go: "#" cutting, one-line
# """…""", '…' stripping) is the same from v0.4.14 (commit 0f76e62ff) to
# v0.4.87 (read at ad0172fac); older versions read some values differently, so
# the recipe refuses them instead of storing a changed secret.
FLY_MIN_VERSION=0.4.14

# The Fly volume that holds WB_DATA; fly.toml mounts it as [mounts] source.
FLY_VOLUME=wbdata
FLY_VOLUME_SIZE_GB=1

case ${UPDATE:-} in
  "" | 0 | 1) ;;
  *) wb_die "UPDATE must be 1 or 0 (got '$UPDATE')" ;;
esac

case ${WB_PURGE:-} in
  "" | 0 | 1) ;;
  *) wb_die "WB_PURGE must be 1 or 0 (got '$WB_PURGE')" ;;
esac

if [[ -n ${WB_REGION:-} && ! $WB_REGION =~ ^[a-z0-9]+$ ]]; then
  wb_die "WB_REGION '$WB_REGION' is not a Fly region code (see 'fly platform regions')"
fi

# With WB_FLY_DOCKERFILE, flyctl builds only when neither --image nor
# [build] image is set (internal/command/deploy/deploy_build.go
# fetchImageRef): a config naming an image would deploy that image and ignore
# the Dockerfile, so `up` refuses it before any flyctl call.
if [[ ${WB_RECIPE_ACTION:-} == up && -n ${WB_FLY_DOCKERFILE:-} ]]; then
  _fly_config=${WB_FLY_CONFIG:-${WB_FLY_TOML:-}}
  if [[ -n $_fly_config && -f $_fly_config ]] &&
    grep -Eq '^[[:space:]]*image[[:space:]]*=' "$_fly_config"; then
    wb_die "WB_FLY_DOCKERFILE is set but $_fly_config has an image = key; flyctl would deploy that image and ignore the Dockerfile (the kit renders fly.toml without [build] image when WB_FLY_DOCKERFILE is set)"
  fi
fi

_fly_update_mode() {
  [[ ${UPDATE:-} == 1 ]]
}

# _fly_version_at_least A B: succeeds when dotted version A >= B.
_fly_version_at_least() {
  local -a a=() b=()
  local i
  IFS=. read -r -a a <<<"$1"
  IFS=. read -r -a b <<<"$2"
  for i in 0 1 2; do
    if ((10#${a[i]:-0} != 10#${b[i]:-0})); then
      ((10#${a[i]:-0} > 10#${b[i]:-0}))
      return
    fi
  done
  return 0
}

# _fly_check_version: refuse a flyctl older than FLY_MIN_VERSION. `flyctl
# version` prints "<name> v<version> <os>/<arch> Commit: …"
# (internal/buildinfo/buildinfo.go info.String); dev builds print no number.
_fly_check_version() {
  local out version
  out=$("$FLY" version)
  if [[ $out =~ \ v([0-9]+)\.([0-9]+)\.([0-9]+) ]]; then
    version="${BASH_REMATCH[1]}.${BASH_REMATCH[2]}.${BASH_REMATCH[3]}"
  else
    wb_say "cannot read a version from '$FLY version' ($out); assuming it is recent"
    return 0
  fi
  if ! _fly_version_at_least "$version" "$FLY_MIN_VERSION"; then
    wb_die "flyctl $version is older than $FLY_MIN_VERSION, the oldest whose secrets parser this recipe was checked against; upgrade it ('$FLY version upgrade' or https://fly.io/docs/flyctl/install/)"
  fi
}

# _fly_is_not_logged_in TEXT: flyctl's error when it has no usable token:
# fly.ErrNoAuthToken (fly-go api.go), returned by RequireSession
# (internal/command/command.go) when there is no token, and also when the
# token comes from ~/.fly/config.yml with a last_login missing or older than
# 30 days (TokenTimeout) and flyctl cannot prompt.
_fly_is_not_logged_in() {
  [[ $1 == *'no access token available'* ]]
}

_fly_not_logged_in_hint() {
  wb_say "flyctl is not logged in: run '$FLY auth login' (a login older than 30 days" \
    "counts as none), or pass FLY_API_TOKEN / FLY_ACCESS_TOKEN"
}

# _fly_app_state: set FLY_APP_STATE to "present" or "absent" from
# `fly status`. "absent" only for flyctl's app-not-found error ("Could not
# find App": the server's GraphQL message, matched the same way by flyctl's
# internal/command/deploy/deploy.go); any other failure (not logged in,
# network, permissions) stops the run with flyctl's exit code, so an unknown
# state never leads to a create attempt.
_fly_app_state() {
  local err rc=0
  err=$("$FLY" status -a "$WB_APP_NAME" 2>&1 >/dev/null) || rc=$?
  if ((rc == 0)); then
    FLY_APP_STATE=present
  elif [[ $err == *'Could not find App'* ]]; then
    FLY_APP_STATE=absent
  else
    printf '%s\n' "$err" >&2
    if _fly_is_not_logged_in "$err"; then
      _fly_not_logged_in_hint
    fi
    wb_say "'$FLY status -a $WB_APP_NAME' failed (exit $rc) for a reason other than a missing app"
    exit "$rc"
  fi
}

provider_ensure_app() {
  local -a org=()
  wb_require WB_APP_NAME
  _fly_check_version
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

# _fly_set_carries VALUE: succeeds when `fly secrets set NAME=-` stores VALUE
# exactly. internal/command/secrets/set.go reads "-" values from stdin with
# helpers/stdin.go ReadStdin(64 * 1024): at most 65536 bytes, decoded rune by
# rune (invalid UTF-8 becomes U+FFFD) and then strings.TrimSpace'd. So: no
# whitespace at either end, and (checked conservatively, in plain bash) only
# ASCII bytes.
_fly_set_carries() {
  local LC_ALL=C
  [[ -n $1 && ${#1} -le 65536 ]] || return 1
  [[ $1 != [[:space:]]* && $1 != *[[:space:]] ]] || return 1
  [[ $1 != *[![:ascii:]]* ]]
}

# provider_check_env (run by the spine before any flyctl call): every engine
# value goes through `secrets import` when flyctl's parser reads it back
# exactly, else through `secrets set NAME=-` (stdin) when that keeps it
# exactly; a value neither carries stops the run, naming the variable.
provider_check_env() {
  local entry name value
  FLY_STDIN_SECRETS=
  for entry in "${WB_ENGINE_ENV[@]}"; do
    name=${entry%%=*}
    value=${entry#*=}
    if wb_dotenv_carries "$name" "$value"; then
      continue
    fi
    if _fly_set_carries "$value"; then
      FLY_STDIN_SECRETS+=" $name"
      continue
    fi
    wb_die "$_WB_DOTENV_WHY, and 'fly secrets set $name=-' would change it" \
      "(it trims surrounding whitespace and reads at most 64 KiB of UTF-8);" \
      "change the value of $name — nothing was sent to Fly"
  done
}

provider_set_secrets() {
  local name
  local -a names=()
  wb_require WB_APP_NAME
  # The values travel on stdin only; --stage stores them without restarting
  # Machines, so `secrets` never deploys and `up` deploys once, afterwards.
  WB_DOTENV_SKIP=${FLY_STDIN_SECRETS:-} wb_engine_dotenv |
    "$FLY" secrets import --stage -a "$WB_APP_NAME"
  read -r -a names <<<"${FLY_STDIN_SECRETS:-}"
  for name in ${names[@]+"${names[@]}"}; do
    # Only the name is in argv; "-" makes flyctl read the value from stdin.
    wb_engine_value "$name" | "$FLY" secrets set "$name=-" --stage -a "$WB_APP_NAME"
  done
}

# _fly_volume_scan JSON NAME REGION: from `fly volumes list --json` output (an
# array of flat objects, fly-go volume_types.go Volume), set
# FLY_VOLUME_PRESENT to yes or no and FLY_VOLUME_ID to the first volume named
# NAME in REGION. Volumes being destroyed do not count.
_fly_volume_scan() {
  local flat=${1//$'\n'/ } chunk
  local re_name="\"name\"[[:space:]]*:[[:space:]]*\"$2\""
  local re_region="\"region\"[[:space:]]*:[[:space:]]*\"$3\""
  local re_gone='"state"[[:space:]]*:[[:space:]]*"(pending_destroy|destroying|destroyed)"'
  local re_id='"id"[[:space:]]*:[[:space:]]*"([^"]*)"'
  FLY_VOLUME_PRESENT=no
  FLY_VOLUME_ID=
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
      if [[ $chunk =~ $re_id ]]; then
        FLY_VOLUME_ID=${BASH_REMATCH[1]}
      fi
      return 0
    fi
  done
}

_fly_require_region() {
  if [[ -z ${WB_REGION:-} ]]; then
    wb_die "WB_REGION is empty; a Fly volume lives in one region, so the deployment must name it"
  fi
}

provider_attach_volume() {
  local json
  wb_require WB_APP_NAME
  # The kit renders [mounts] only when the deployment keeps data on one machine's
  # volume (one instance with local files or SQLite); otherwise there is none to make.
  if [[ -n ${WB_FLY_TOML:-} ]] && ! grep -q '^\[mounts\]' "$WB_FLY_TOML"; then
    wb_say "no volume: the deployment keeps its data in shared stores"
    return 0
  fi
  _fly_require_region
  json=$("$FLY" volumes list -a "$WB_APP_NAME" --json)
  _fly_volume_scan "$json" "$FLY_VOLUME" "$WB_REGION"
  if [[ $FLY_VOLUME_PRESENT == yes ]]; then
    wb_say "volume $FLY_VOLUME ($FLY_VOLUME_ID) exists in $WB_REGION"
    return 0
  fi
  if _fly_update_mode; then
    wb_die "UPDATE=1 but app $WB_APP_NAME has no $FLY_VOLUME volume in $WB_REGION; unset UPDATE to create it"
  fi
  # Created here rather than left to the first deploy (which would create it in
  # primary_region too, deploy_first.go provisionVolumesOnFirstDeploy): a later
  # deploy onto an app with no Machines only attaches an existing unattached
  # volume (machines.go validateVolumeConfig), so the volume must exist anyway.
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
  # No region flag: `fly deploy` has none since v0.2.47 (commit 363a040f1);
  # new Machines go to the config's primary_region, where the volume is
  # (machines_launchinput.go launchInputForLaunch). --primary-region replaces
  # the config's primary_region for this deploy (deploy.go run ->
  # machines.go determineAppConfigForMachines), so a WB_FLY_CONFIG naming
  # another region still lands beside the volume.
  args=(deploy -a "$WB_APP_NAME" --config "$config" --ha=false --yes)
  if [[ -n ${WB_REGION:-} ]]; then
    args+=(--primary-region "$WB_REGION")
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
  _fly_scale "$config"
}

# _fly_machine_regions JSON: from `fly status --json` (status/machines.go
# renderMachineJSONStatus: the app's fields, then "Machines", each a fly-go
# machine_types.go Machine with its "region"), print one region per machine.
_fly_machine_regions() {
  local flat=${1//$'\n'/ }
  local re='"region"[[:space:]]*:[[:space:]]*"([a-z0-9]+)"(.*)$'
  if [[ $flat != *'"Machines"'* ]]; then
    wb_die "'$FLY status --json' printed no \"Machines\"; refusing to guess how many run"
  fi
  flat=${flat#*\"Machines\"}
  while [[ $flat =~ $re ]]; do
    printf '%s\n' "${BASH_REMATCH[1]}"
    flat=${BASH_REMATCH[2]}
  done
}

# _fly_scale CONFIG: after the deploy, WB_SCALE machines over WB_REGION +
# WB_REGIONS, and none in a region the file no longer names. A deployment with
# a volume ([mounts] in CONFIG) is one machine by construction (the kit refuses
# SCALE > 1 with one), so it is left alone. Nothing is called when the app
# already has that shape, so a converged app sees no mutating call.
#
# `fly scale count N --region R1,R2 --max-per-region M` (scale/count.go
# newScaleCount; -r/--region is "Comma separated list of regions to act on")
# converges only the machines of the listed regions to N in total, at most M in
# each (count_machines.go convergeGroupCounts; ErrMaxPerRegion when R*M < N):
# M = ceil(N/R) spreads them evenly, the primary region first. Machines in other
# regions are not counted, so a dropped region gets its own
# `fly scale count 0 --region DROPPED`, after the new machines run.
_fly_scale() {
  local config=$1 json region r n total=0 over=no max n_regions
  local -a wanted=() have=() dropped=()
  if grep -q '^\[mounts\]' "$config"; then
    return 0
  fi
  _fly_require_region
  for region in $WB_REGION ${WB_REGIONS:-}; do
    if [[ " ${wanted[*]+${wanted[*]}} " != *" $region "* ]]; then
      wanted+=("$region")
    fi
  done
  n_regions=${#wanted[@]}
  max=$(((WB_SCALE + n_regions - 1) / n_regions))
  json=$("$FLY" status -a "$WB_APP_NAME" --json)
  while IFS= read -r region; do
    if [[ -n $region ]]; then
      have+=("$region")
    fi
  done < <(_fly_machine_regions "$json")
  for region in ${have[@]+"${have[@]}"}; do
    if [[ " ${wanted[*]} " == *" $region "* ]]; then
      total=$((total + 1))
    elif [[ " ${dropped[*]+${dropped[*]}} " != *" $region "* ]]; then
      dropped+=("$region")
    fi
  done
  for region in "${wanted[@]}"; do
    n=0
    for r in ${have[@]+"${have[@]}"}; do
      if [[ $r == "$region" ]]; then
        n=$((n + 1))
      fi
    done
    if ((n > max)); then
      over=yes
    fi
  done
  if ((total != WB_SCALE)) || [[ $over == yes ]]; then
    wb_say "scaling to $WB_SCALE machines over ${wanted[*]} (at most $max per region)"
    local IFS=,
    "$FLY" scale count "$WB_SCALE" -a "$WB_APP_NAME" --region "${wanted[*]}" \
      --max-per-region "$max" --yes
  fi
  if ((${#dropped[@]} > 0)); then
    local IFS=,
    wb_say "no machines in ${dropped[*]}: the file no longer names those regions"
    "$FLY" scale count 0 -a "$WB_APP_NAME" --region "${dropped[*]}" --yes
  fi
}

provider_public_url() {
  wb_require WB_APP_NAME
  printf 'https://%s.fly.dev\n' "$WB_APP_NAME"
}

# provider_down: without WB_PURGE, destroy every Machine and keep the rest:
# `fly scale count 0` destroys Machines only (internal/command/scale/
# count_machines.go destroyMachine), leaving the volume (detached) and the
# secrets; the next `up` deploys onto an app with no Machines, which launches
# one in primary_region on the unattached wbdata volume there
# (machines_launchinput.go popVolumeFor). With WB_PURGE=1: `fly apps destroy`,
# which deletes the app, its volumes and its secrets. Prints `kept: …` and
# `destroyed: …` lines on stdout, which the kit repeats.
provider_down() {
  local err rc=0 json
  wb_require WB_APP_NAME
  _fly_app_state
  if [[ $FLY_APP_STATE == absent ]]; then
    wb_say "app $WB_APP_NAME does not exist; nothing to stop"
    printf 'kept: nothing — app %s does not exist on Fly\n' "$WB_APP_NAME"
    return 0
  fi
  if [[ ${WB_PURGE:-} == 1 ]]; then
    "$FLY" apps destroy "$WB_APP_NAME" --yes >&2
    printf 'destroyed: app %s with its machines, its %s volume and its secrets\n' \
      "$WB_APP_NAME" "$FLY_VOLUME"
    return 0
  fi
  # scale count fails on an app without a complete release, i.e. one never
  # deployed, which has no Machines to destroy (count_machines.go).
  err=$("$FLY" scale count 0 -a "$WB_APP_NAME" --yes 2>&1 >/dev/null) || rc=$?
  if ((rc == 0)); then
    printf 'destroyed: the machines of app %s\n' "$WB_APP_NAME"
  elif [[ $err == *'this app has no complete releases'* ]]; then
    wb_say "app $WB_APP_NAME was never deployed; it has no machines to stop"
  else
    printf '%s\n' "$err" >&2
    wb_say "'$FLY scale count 0 -a $WB_APP_NAME --yes' failed (exit $rc)"
    exit "$rc"
  fi
  printf 'kept: app %s and its secrets\n' "$WB_APP_NAME"
  json=$("$FLY" volumes list -a "$WB_APP_NAME" --json)
  _fly_volume_scan "$json" "$FLY_VOLUME" "${WB_REGION:-[a-z0-9]*}"
  if [[ $FLY_VOLUME_PRESENT == yes ]]; then
    printf 'kept: volume %s (%s) with the data at %s\n' "$FLY_VOLUME" "$FLY_VOLUME_ID" \
      "${WB_DATA:-/data}"
  fi
}

# provider_status: flyctl's own words, then the contract's `state:` line built
# from `fly status --json` (machines.go renderMachineJSONStatus: the AppCompact
# fields and "Machines", each with "state", "region" and "config"."image"). An
# absent app is exit 0 with "present": false; any other failure stops the run.
provider_status() {
  local json
  wb_require WB_APP_NAME
  _fly_app_state
  if [[ $FLY_APP_STATE == absent ]]; then
    wb_say "app $WB_APP_NAME does not exist on Fly"
    printf 'state: {"present": false, "image": null, "instances": 0, "regions": []}\n'
    return 0
  fi
  "$FLY" status -a "$WB_APP_NAME"
  json=$("$FLY" status -a "$WB_APP_NAME" --json)
  _fly_state_line "$json"
}

# _fly_state_line JSON: the `state:` line from `fly status --json`: instances
# are the Machines in state "started"; image is the first Machine's image.
_fly_state_line() {
  local flat=${1//$'\n'/ } rest image=null regions='' n=0
  local re_started='"state"[[:space:]]*:[[:space:]]*"started"(.*)'
  local re_region='"region"[[:space:]]*:[[:space:]]*"([a-z0-9]+)"(.*)'
  local re_image='"image"[[:space:]]*:[[:space:]]*"([^"\\]*)"'
  rest=${flat#*\"Machines\"}
  if [[ $rest == "$flat" ]]; then
    wb_die "'$FLY status --json' printed no Machines; refusing to guess the app's state"
  fi
  local machines=$rest
  while [[ $rest =~ $re_started ]]; do
    n=$((n + 1))
    rest=${BASH_REMATCH[1]}
  done
  rest=$machines
  while [[ $rest =~ $re_region ]]; do
    if [[ " $regions " != *" \"${BASH_REMATCH[1]}\" "* ]]; then
      regions+="${regions:+, }\"${BASH_REMATCH[1]}\""
    fi
    rest=${BASH_REMATCH[2]}
  done
  if [[ $machines =~ $re_image ]]; then
    image="\"${BASH_REMATCH[1]}\""
  fi
  printf 'state: {"present": true, "image": %s, "instances": %d, "regions": [%s]}\n' \
    "$image" "$n" "$regions"
}

# provider_logs: `fly logs --no-tail` returns only after a non-empty batch of
# log entries (logs/polling.go Poll); on an app without entries it polls for
# ever. So it runs under a timeout: no entries within WB_FLY_LOGS_TIMEOUT
# seconds is said, not hidden, and is not an error.
provider_logs() {
  local rc=0 seconds=${WB_FLY_LOGS_TIMEOUT:-20}
  wb_require WB_APP_NAME
  if [[ ! $seconds =~ ^[1-9][0-9]*$ ]]; then
    wb_die "WB_FLY_LOGS_TIMEOUT must be a whole number of seconds (got '$seconds')"
  fi
  wb_with_timeout "$seconds" "$FLY" logs -a "$WB_APP_NAME" --no-tail || rc=$?
  if ((rc == 124)); then
    wb_say "no log entries within ${seconds}s ('$FLY logs --no-tail' waits until there is one); stopped it"
    return 0
  fi
  return "$rc"
}

wb_recipe_run
