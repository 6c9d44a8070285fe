#!/usr/bin/env bash
# wb-properties: HOST:ssh-target DOMAIN:hostname PUBLISH:port
# wb-requires: APP HOST
# wb-passthrough: SSH_AUTH_SOCK
# wb-cli: ssh
# wb-supports: SIZE
#
# ssh + docker: any Linux box with docker and an ssh login runs the engine (one
# container, one named volume) through the operator's ssh: their keys or agent,
# their known_hosts, BatchMode=yes, -F "$HOME/.ssh/config" when it exists.
# HOST = user@host[:port]; PUBLISH = [addr:]port on the host (default 4000);
# DOMAIN = the name your proxy terminates TLS for. Values never in argv on
# either side: the engine env goes on stdin into ~/.wb/<app>.env (0600) on the
# host, read there by `docker run --env-file` (docker keeps the values in the
# container's config: `docker inspect` shows them to whoever may use it).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../_recipe.sh
source "$WB_PROVIDERS_DIR/_recipe.sh"
WB_RECIPE_PLACE=ssh

if [[ ! ${WB_PROP_HOST:-} =~ ^([A-Za-z0-9._][A-Za-z0-9._-]*)@([A-Za-z0-9.-]+)(:([0-9]+))?$ ]]; then
  wb_die "HOST must be user@host[:port] (got '${WB_PROP_HOST:-}')"
fi
SSH_LOGIN=${BASH_REMATCH[1]}@${BASH_REMATCH[2]} SSH_HOST=${BASH_REMATCH[2]} SSH_PORT=${BASH_REMATCH[4]:-22}
NAME=${WB_APP_NAME:?} VOLUME=${WB_APP_NAME}-data ENV_FILE=.wb/${WB_APP_NAME}.env PUBLISH=${WB_PROP_PUBLISH:-4000}

# _q VALUE: VALUE single-quoted for the host's POSIX shell.
_q() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

# _ssh SCRIPT: run SCRIPT with the login's shell on the host (stdin passes on).
_ssh() {
  local rc=0
  local -a opts=(-o BatchMode=yes -o ConnectTimeout=15 -p "$SSH_PORT")
  if [[ -f $HOME/.ssh/config ]]; then opts=(-F "$HOME/.ssh/config" "${opts[@]}"); fi
  # shellcheck disable=SC2029  # the script is built here on purpose (values quoted by _q)
  ssh "${opts[@]}" "$SSH_LOGIN" "$1" || rc=$?
  if ((rc == 255)); then
    wb_say "ssh to $SSH_LOGIN (port $SSH_PORT) failed (ssh's message is above). ssh runs with" \
      "BatchMode=yes and never prompts: load your key (ssh-add; SSH_AUTH_SOCK is passed)," \
      "put the host in known_hosts (ssh-keyscan -p $SSH_PORT $SSH_HOST), or set it up in ~/.ssh/config"
  fi
  return "$rc"
}

# docker's env-file is one NAME=VALUE per line: a value holding a newline or a
# carriage return cannot arrive intact, so it is refused by name up front.
provider_check_env() {
  local entry
  for entry in ${WB_ENGINE_ENV[@]+"${WB_ENGINE_ENV[@]}"}; do
    if [[ ${entry#*=} == *[$'\n\r']* ]]; then
      wb_die "${entry%%=*} holds a line break; docker --env-file carries one line per variable — store it single-line (e.g. base64)"
    fi
  done
}

provider_ensure_app() {
  _ssh "docker version --format 'docker {{.Server.Version}} on the host' >&2 && umask 077 && mkdir -p .wb"
}

# The engine env as NAME=VALUE lines, from the spine's record stream, on
# stdin to the host; written 0600 (umask 077) and renamed into place.
provider_set_secrets() {
  wb_engine_records | while IFS= read -r -d '' name && IFS= read -r -d '' value; do
    printf '%s=%s\n' "$name" "$value"
  done | _ssh "umask 077 && mkdir -p .wb && cat >$(_q "$ENV_FILE.tmp") && chmod 600 $(_q "$ENV_FILE.tmp") && mv $(_q "$ENV_FILE.tmp") $(_q "$ENV_FILE")"
}

provider_attach_volume() { _ssh "docker volume create $(_q "$VOLUME") >/dev/null"; }

# Replaced only when the image, env digest or SIZE changed; else started if stopped.
provider_deploy_image() {
  local want="$WB_IMAGE ${WB_ENV_DIGEST:-} ${WB_SIZE:-}" size=''
  if [[ -n ${WB_MEMORY_MB:-} ]]; then size="--memory ${WB_MEMORY_MB}m --cpus ${WB_CPUS:?}"; fi
  _ssh "set -e
cur=\$(docker ps -a --filter name=^$NAME\$ --format '{{.Image}} {{.Label \"wb.env\"}} {{.Label \"wb.size\"}}')
if [ \"\$cur\" = $(_q "$want") ]; then
  docker start $(_q "$NAME") >/dev/null; echo 'unchanged: container $NAME' >&2; exit 0
fi
if [ -n \"\$cur\" ]; then docker rm -f $(_q "$NAME") >/dev/null; fi
docker run -d --name $(_q "$NAME") --restart unless-stopped --env-file \"\$HOME\"/$(_q "$ENV_FILE") \
  -v $(_q "$VOLUME"):$(_q "${WB_DATA:-/data}") -p $(_q "$PUBLISH:${PORT:-$WB_PORT}") \
  $size --label wb.env=$(_q "${WB_ENV_DIGEST:-}") --label wb.size=$(_q "${WB_SIZE:-}") \
  --label wb.app=$(_q "$WB_APP_NAME") $(_q "$WB_IMAGE") >/dev/null
echo 'started: container $NAME' >&2"
}

provider_public_url() {
  if [[ -n ${WB_PROP_DOMAIN:-} ]]; then
    printf 'https://%s\n' "$WB_PROP_DOMAIN"
  else
    printf 'http://%s:%s\n' "$SSH_HOST" "${PUBLISH##*:}"
  fi
}

provider_down() {
  _ssh "if [ -n \"\$(docker ps -aq --filter name=^$NAME\$)\" ]; then docker rm -f $(_q "$NAME") >/dev/null; fi"
  printf 'destroyed: container %s on %s\n' "$NAME" "$SSH_HOST"
  if [[ ${WB_PURGE:-} == 1 ]]; then
    _ssh "docker volume rm -f $(_q "$VOLUME") >/dev/null && rm -f $(_q "$ENV_FILE")"
    printf 'destroyed: volume %s and the env file ~/%s\n' "$VOLUME" "$ENV_FILE"
  else
    printf 'kept: volume %s (the data at %s) and the env file ~/%s\n' "$VOLUME" "${WB_DATA:-/data}" "$ENV_FILE"
  fi
}

# present = the container or the volume exists; instances = 1 while it runs.
provider_status() {
  local out
  out=$(_ssh "set -e
c=\$(docker ps -a --filter name=^$NAME\$ --format '{{.State}} {{.Image}}')
v=\$(docker volume ls -q --filter name=^$VOLUME\$)
echo \"\$c|\$v\"")
  local container=${out%%|*} volume=${out#*|}
  if [[ -z $container && -z $volume ]]; then
    printf 'state: {"present": false, "image": null, "instances": 0, "regions": []}\n'
  elif [[ -z $container ]]; then
    printf 'state: {"present": true, "image": null, "instances": 0, "regions": []}\n'
  else
    printf '%s on %s: %s\n' "$NAME" "$SSH_HOST" "$container"
    printf 'state: {"present": true, "image": "%s", "instances": %d, "regions": []}\n' \
      "${container#* }" "$([[ ${container%% *} == running ]] && echo 1 || echo 0)"
  fi
}

provider_logs() { _ssh "docker logs --tail 200 $(_q "$NAME") 2>&1"; }

wb_recipe_run
