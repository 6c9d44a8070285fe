# shellcheck shell=bash
#
# _recipe.sh: the spine every provider recipe sources. It is never executed
# on its own.
#
# For recipe authors
# ------------------
# The deploy kit finds <root>/<place>/bootstrap.sh and runs it with bash and a
# CLEARED environment: PATH, HOME, the WB_* inputs described in README.md, the
# engine environment as plain variables, and the credential variables named on
# the recipe's own passthrough header line (the kit reads that line):
#
#     # wb-passthrough: NAME NAME
#
# A recipe sources this file, sets WB_RECIPE_PLACE to its directory name,
# defines the eight hooks below and ends with `wb_recipe_run`:
#
#     provider_ensure_app      the app exists afterwards (create it if absent)
#     provider_set_secrets     the whole engine env is stored with the provider,
#                              staged (no restart); use wb_engine_dotenv or
#                              the WB_ENGINE_ENV array, never argv
#     provider_attach_volume   the persistent volume for WB_DATA exists
#     provider_deploy_image    the engine image runs with the staged env
#     provider_public_url      print the public base URL (no "url: " prefix)
#     provider_down            destroy what `up` created
#     provider_status          print the provider's view of the app
#     provider_logs            print recent logs and return (no following)
#
# and may define provider_check_env, run by wb_base_env before any hook: it
# must refuse (wb_die, naming the variable, never its value) every engine value
# the recipe cannot deliver exactly. Without it, every value must fit
# wb_engine_dotenv.
#
# The shape of the deployment (SPEC §13.1) arrives in eight inputs that are
# always set, empty when the file leaves the key unset: WB_SCALE, WB_REGIONS
# (space-separated), WB_SIZE with WB_MEMORY_MB and WB_CPUS (all empty: the
# provider's default size), WB_AUTO_STOP, WB_STRATEGY and WB_HEALTH_PATH
# (/livez, the engine's unauthenticated liveness path).
# wb_recipe_run gives any that is unset (a recipe run by hand) its default:
# WB_SCALE=1, WB_HEALTH_PATH=/livez, the rest empty.
#
# Every hook must be idempotent: `up` run twice in a row must succeed and
# create nothing the second time. A hook fails by exiting non-zero (set -e is
# on); never hide a failure with `|| true`, and never decide "absent" from an
# error you have not recognised. While `up` and `secrets` run, the hooks'
# stdout goes to stderr so that the kit reads a single `url: ...` line from
# stdout.
#
# Written for bash and kept free of bash-4-only features (no associative
# arrays, no mapfile, empty arrays expanded with ${a[@]+...}) with macOS's
# bash 3.2 in mind; the tests run it with the system's bash (5.x).

set -euo pipefail
# Command substitutions inherit `set -e` too (bash >= 4.4; older bash lacks
# the option, and the spine never relies on it for correctness).
if ((BASH_VERSINFO[0] > 4 || (BASH_VERSINFO[0] == 4 && BASH_VERSINFO[1] >= 4))); then
  shopt -s inherit_errexit
fi

# The shape inputs (see above), always set by the kit.
WB_SHAPE_INPUTS="WB_SCALE WB_REGIONS WB_SIZE WB_MEMORY_MB WB_CPUS WB_AUTO_STOP \
WB_STRATEGY WB_HEALTH_PATH"

# The six actions wb_recipe_run accepts, for messages.
WB_RECIPE_ACTIONS="up secrets down status logs url"

# Engine variables that join the engine env only when set and non-empty,
# in the kit's order (after the five that are always present).
WB_ENGINE_OPTIONAL="WB_APP_NAME WB_REGION WB_PROFILE_DIR WB_TENANCY_MODE \
WB_STORAGE WB_S3_ENDPOINT WB_S3_BUCKET WB_S3_REGION WB_AUTH WB_AUTH_ISSUER \
WB_JWKS_URL WB_S3_KEY WB_S3_SECRET WB_DATABASE_URL WB_PUBLIC_BEARER \
WB_SIGNING_KEY"

# flyctl's `secrets import` reads stdin with Go's bufio.Scanner, which stops
# (silently) at a line of 64 KiB; stay clearly below it.
WB_DOTENV_MAX_LINE=65000

# wb_say MESSAGE...: one line on stderr, prefixed with the recipe's place.
wb_say() {
  printf 'wb recipe %s: %s\n' "${WB_RECIPE_PLACE:-?}" "$*" >&2
}

# wb_die MESSAGE...: say it and exit 1.
wb_die() {
  wb_say "$*"
  exit 1
}

# wb_require NAME...: each variable must be set and non-empty.
wb_require() {
  local name
  for name in "$@"; do
    if [[ -z ${!name:-} ]]; then
      wb_die "$name is not set; the kit passes it to every recipe run"
    fi
  done
}

# _wb_is_name NAME: succeeds when NAME is a usable environment variable name.
_wb_is_name() {
  [[ $1 =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]
}

# _wb_has_entry NAME: succeeds when WB_ENGINE_ENV already holds NAME=...
_wb_has_entry() {
  local entry
  for entry in ${WB_ENGINE_ENV[@]+"${WB_ENGINE_ENV[@]}"}; do
    if [[ ${entry%%=*} == "$1" ]]; then
      return 0
    fi
  done
  return 1
}

# _wb_in_words WORD LIST: succeeds when WORD is one of the words of LIST.
_wb_in_words() {
  local word
  local -a words=()
  read -r -a words <<<"$2"
  for word in ${words[@]+"${words[@]}"}; do
    if [[ $word == "$1" ]]; then
      return 0
    fi
  done
  return 1
}

# wb_base_env: assemble WB_ENGINE_ENV, the engine environment as NAME=value
# strings, from the variables (the same rules as the kit's Rust side), then
# cross-check the names against WB_ENGINE_KEYS when the kit sent them.
wb_base_env() {
  local name data
  local -a names=()
  wb_require WB_IMAGE

  data=${WB_DATA:-/data}
  WB_ENGINE_ENV=(
    "WB_WEB=1"
    "PORT=${WB_PORT:-4000}"
    "WB_DATA=$data"
    "WB_EMBED=${WB_EMBED:-local}"
    "WB_REGISTRY=${WB_REGISTRY:-$data/registry.db}"
  )

  read -r -a names <<<"$WB_ENGINE_OPTIONAL"
  for name in "${names[@]}"; do
    if [[ -n ${!name:-} ]]; then
      WB_ENGINE_ENV+=("$name=${!name}")
    fi
  done

  names=()
  read -r -a names <<<"${WB_SECRET_KEYS:-}"
  for name in ${names[@]+"${names[@]}"}; do
    _wb_is_name "$name" || wb_die "WB_SECRET_KEYS holds '$name', which is not a variable name"
    if _wb_has_entry "$name"; then
      continue
    fi
    if [[ -z ${!name+set} ]]; then
      wb_die "secret $name is declared in WB_SECRET_KEYS but not set in the environment"
    fi
    WB_ENGINE_ENV+=("$name=${!name}")
  done

  if [[ -n ${WB_ENGINE_KEYS+set} ]]; then
    _wb_check_engine_keys
  fi

  # Refuse values the recipe cannot send before anything is created: a recipe
  # that sends some values another way checks them in provider_check_env; the
  # rest must fit the dotenv form.
  if declare -F provider_check_env >/dev/null; then
    provider_check_env
  else
    wb_engine_dotenv >/dev/null
  fi
}

# _wb_check_engine_keys: the set of names in WB_ENGINE_ENV must equal the set
# in WB_ENGINE_KEYS; otherwise the kit and this spine disagree on the rules.
_wb_check_engine_keys() {
  local entry name spine_names="" only_kit="" only_spine=""
  local -a kit_keys=()
  read -r -a kit_keys <<<"$WB_ENGINE_KEYS"

  for entry in "${WB_ENGINE_ENV[@]}"; do
    name=${entry%%=*}
    spine_names+=" $name"
    if ! _wb_in_words "$name" "$WB_ENGINE_KEYS"; then
      only_spine+=" $name"
    fi
  done
  for name in ${kit_keys[@]+"${kit_keys[@]}"}; do
    if ! _wb_in_words "$name" "$spine_names"; then
      only_kit+=" $name"
    fi
  done

  if [[ -n $only_kit || -n $only_spine ]]; then
    wb_die "the kit and the recipe spine disagree on the engine env" \
      "(only the kit has:${only_kit:- nothing}; only the spine has:${only_spine:- nothing});" \
      "the kit's Rust side and recipes/_recipe.sh must follow the same rules"
  fi
}

# _wb_dotenv_line NAME VALUE: print one NAME=VALUE line that `flyctl secrets
# import` parses back to exactly VALUE, or return 1 (printing nothing) with the
# reason in _WB_DOTENV_WHY, which names NAME and never shows the value.
#
# The parser (internal/command/secrets/parser.go in superfly/flyctl, read at
# ad0172fac = v0.4.87; unchanged in behaviour since v0.4.14), line by line:
#   - lines come from bufio.Scanner: split at \n, a \r before \n dropped, and a
#     line of 64 KiB or more silently ends the input;
#   - NAME=VALUE split at the first "="; spaces before VALUE dropped;
#   - VALUE is cut at its first "#" when the text before that "#" holds an even
#     number of double quotes (then trailing spaces go too);
#   - """x""" (6 bytes or more) is x; a value starting with """ and not ending
#     so opens a multi-line value, closed by the first later line ending in
#     """ (lines joined with \n);
#   - otherwise one pair of surrounding " or ' is removed.
# So a one-line value v is written as NAME="""v""" when v has no "#" or an even
# number of " before its first "#" (the three quotes keep the count even, so
# nothing is cut), and as NAME='v' when that number is odd (the count with the
# opening ' stays odd). Every one-line value has one of the two forms.
_wb_dotenv_line() {
  local name=$1 value=$2 first rest line quotes
  local LC_ALL=C
  _WB_DOTENV_WHY=
  if ! _wb_is_utf8 "$value"; then
    # flyctl sends secrets to Fly as JSON (fly-go flaps/flaps.go _sendRequest,
    # json.Marshal), and Go's encoding/json turns invalid UTF-8 into U+FFFD.
    _WB_DOTENV_WHY="the value of $name is not valid UTF-8, which flyctl would change (its JSON replaces invalid bytes)"
    return 1
  fi
  if [[ $value != *$'\n'* ]]; then
    if _wb_even_quotes_before_hash "$value"; then
      line="$name=\"\"\"$value\"\"\""
    else
      line="$name='$value'"
    fi
    if ((${#line} > WB_DOTENV_MAX_LINE)); then
      _WB_DOTENV_WHY="the value of $name is longer than flyctl secrets import can read on one line"
      return 1
    fi
    printf '%s\n' "$line"
    return 0
  fi

  # Multi-line: NAME="""first, the middle lines, last""" — the first line must
  # not be cut at a "#" nor read as a one-line """…""", no line before the last
  # may end in """ (it would close the value) or in \r (the scanner drops it).
  first=${value%%$'\n'*}
  rest=${value#*$'\n'}
  if ! _wb_even_quotes_before_hash "$first"; then
    _WB_DOTENV_WHY="the first line of $name has a '#' after an odd number of double quotes, which flyctl secrets import cuts"
    return 1
  fi
  if [[ $first == *'"""' ]]; then
    _WB_DOTENV_WHY="the first line of $name ends with three double quotes, which flyctl secrets import reads as a one-line value"
    return 1
  fi
  if [[ $first == *$'\r' ]]; then
    _WB_DOTENV_WHY="a line of $name ends with a carriage return, which flyctl secrets import drops"
    return 1
  fi
  if ((${#first} + ${#name} + 4 > WB_DOTENV_MAX_LINE)); then
    _WB_DOTENV_WHY="a line of $name is longer than flyctl secrets import can read"
    return 1
  fi
  while [[ $rest == *$'\n'* ]]; do
    line=${rest%%$'\n'*}
    rest=${rest#*$'\n'}
    if [[ $line == *'"""' ]]; then
      _WB_DOTENV_WHY="a line of $name ends with three double quotes, which would end the value early in flyctl secrets import"
      return 1
    fi
    if [[ $line == *$'\r' ]]; then
      _WB_DOTENV_WHY="a line of $name ends with a carriage return, which flyctl secrets import drops"
      return 1
    fi
    if ((${#line} > WB_DOTENV_MAX_LINE)); then
      _WB_DOTENV_WHY="a line of $name is longer than flyctl secrets import can read"
      return 1
    fi
  done
  if ((${#rest} + 3 > WB_DOTENV_MAX_LINE)); then
    _WB_DOTENV_WHY="a line of $name is longer than flyctl secrets import can read"
    return 1
  fi
  quotes='"""'
  printf '%s=%s%s%s\n' "$name" "$quotes" "$value" "$quotes"
}

# _wb_is_utf8 TEXT: succeeds when TEXT is valid UTF-8 (RFC 3629: no
# overlong forms, no surrogates, at most U+10FFFF). ASCII text takes the fast
# path; otherwise one byte-wise regular expression in the C locale.
_wb_is_utf8() {
  local LC_ALL=C
  local re=$'^([\x01-\x7f]|[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec\xee\xef][\x80-\xbf][\x80-\xbf]|\xed[\x80-\x9f][\x80-\xbf]|\xf0[\x90-\xbf][\x80-\xbf][\x80-\xbf]|[\xf1-\xf3][\x80-\xbf][\x80-\xbf][\x80-\xbf]|\xf4[\x80-\x8f][\x80-\xbf][\x80-\xbf])*$'
  if [[ $1 != *[![:ascii:]]* ]]; then
    return 0
  fi
  [[ $1 =~ $re ]]
}

# _wb_even_quotes_before_hash TEXT: succeeds when TEXT has no "#", or an even
# number of double quotes before its first "#".
_wb_even_quotes_before_hash() {
  local before quotes
  if [[ $1 != *'#'* ]]; then
    return 0
  fi
  before=${1%%'#'*}
  quotes=${before//[!\"]/}
  ((${#quotes} % 2 == 0))
}

# wb_engine_dotenv: print WB_ENGINE_ENV as dotenv text on stdout, in the
# format `flyctl secrets import` reads from stdin. Every value round-trips
# exactly; a value that cannot (see _wb_dotenv_line) stops the run with exit 1,
# naming the variable, before anything is printed. Names listed in
# WB_DOTENV_SKIP (words) are left out: a recipe sends those another way.
# Pipe it straight into the provider's CLI: values never go through argv.
wb_engine_dotenv() {
  local entry
  if [[ -z ${WB_ENGINE_ENV+set} ]]; then
    wb_die "wb_engine_dotenv called before wb_base_env"
  fi
  for entry in "${WB_ENGINE_ENV[@]}"; do
    if _wb_in_words "${entry%%=*}" "${WB_DOTENV_SKIP:-}"; then
      continue
    fi
    # Validate everything first so a bad value never yields partial output.
    if ! _wb_dotenv_line "${entry%%=*}" "${entry#*=}" >/dev/null; then
      wb_die "$_WB_DOTENV_WHY; nothing was sent"
    fi
  done
  for entry in "${WB_ENGINE_ENV[@]}"; do
    if ! _wb_in_words "${entry%%=*}" "${WB_DOTENV_SKIP:-}"; then
      _wb_dotenv_line "${entry%%=*}" "${entry#*=}"
    fi
  done
}

# wb_dotenv_carries NAME VALUE: succeeds when wb_engine_dotenv can carry VALUE;
# otherwise fails with the reason (naming NAME) in _WB_DOTENV_WHY.
wb_dotenv_carries() {
  _wb_dotenv_line "$1" "$2" >/dev/null
}

# wb_engine_value NAME: print the value of NAME in WB_ENGINE_ENV (no newline),
# for piping into a provider's CLI. Fails when NAME is not in the engine env.
wb_engine_value() {
  local entry
  for entry in ${WB_ENGINE_ENV[@]+"${WB_ENGINE_ENV[@]}"}; do
    if [[ ${entry%%=*} == "$1" ]]; then
      printf '%s' "${entry#*=}"
      return 0
    fi
  done
  wb_die "wb_engine_value: $1 is not in the engine env"
}

# wb_engine_records: the engine env as a stream of NAME/VALUE records on
# stdout, every field ended by a NUL byte (NAME\0VALUE\0NAME\0VALUE\0...).
# printf is a bash builtin, so no value reaches any argv, and nothing touches
# disk: pipe it into whatever turns records into the provider's format, e.g.
#
#     wb_engine_records | while IFS= read -r -d '' name &&
#       IFS= read -r -d '' value; do ...; done
#
# (environment values cannot hold NUL, so the stream is unambiguous; a value
# may hold newlines — refuse them by name where the format cannot carry them).
wb_engine_records() {
  local entry
  for entry in ${WB_ENGINE_ENV[@]+"${WB_ENGINE_ENV[@]}"}; do
    printf '%s\0%s\0' "${entry%%=*}" "${entry#*=}"
  done
}

# wb_with_timeout SECONDS COMMAND...: run COMMAND; stop it (SIGTERM) when it
# has not finished after SECONDS and return 124 (what coreutils timeout
# returns), else return its exit code. Plain bash, so it works where
# `timeout` is missing (macOS).
wb_with_timeout() {
  local seconds=$1 pid rc=0 ticks=0
  shift
  "$@" &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    if ((ticks >= seconds * 10)) && kill -TERM "$pid" 2>/dev/null; then
      wait "$pid" || rc=$?
      return 124
    fi
    sleep 0.1
    ticks=$((ticks + 1))
  done
  wait "$pid" || rc=$?
  return "$rc"
}

# _wb_step HOOK: run one hook, remembering its name for the failure message.
_wb_step() {
  _wb_require_hook "$1"
  _WB_STEP=$1
  "$1"
  _WB_STEP=
}

_wb_require_hook() {
  if ! declare -F "$1" >/dev/null; then
    wb_die "recipe ${WB_RECIPE_PLACE:-?} does not define $1"
  fi
}

_wb_on_exit() {
  local rc=$?
  if ((rc != 0)) && [[ -n ${_WB_STEP:-} ]]; then
    wb_say "$_WB_STEP failed (exit $rc); later steps did not run"
  fi
}

# _wb_print_url: the `url: ...` line the kit reads from stdout.
_wb_print_url() {
  local url
  _wb_require_hook provider_public_url
  url=$(provider_public_url)
  if [[ -z $url ]]; then
    wb_die "provider_public_url printed nothing"
  fi
  printf 'url: %s\n' "$url"
}

# _wb_shape_defaults: every name of WB_SHAPE_INPUTS set (the kit always sets
# them; a recipe run by hand gets the defaults).
_wb_shape_defaults() {
  local name
  for name in $WB_SHAPE_INPUTS; do
    if [[ -z ${!name+set} ]]; then
      case $name in
        WB_SCALE) printf -v "$name" '%s' 1 ;;
        WB_HEALTH_PATH) printf -v "$name" '%s' /livez ;;
        *) printf -v "$name" '%s' '' ;;
      esac
    fi
  done
}

# wb_recipe_run: dispatch WB_RECIPE_ACTION to the hooks.
wb_recipe_run() {
  if [[ -z ${WB_RECIPE_PLACE:-} ]]; then
    wb_die "the recipe must set WB_RECIPE_PLACE before calling wb_recipe_run"
  fi
  _WB_STEP=
  trap _wb_on_exit EXIT
  _wb_shape_defaults

  case ${WB_RECIPE_ACTION:-} in
    up)
      wb_base_env
      _wb_step provider_ensure_app >&2
      _wb_step provider_set_secrets >&2
      _wb_step provider_attach_volume >&2
      _wb_step provider_deploy_image >&2
      _wb_print_url
      ;;
    secrets)
      wb_base_env
      _wb_step provider_ensure_app >&2
      _wb_step provider_set_secrets >&2
      ;;
    down)
      _wb_step provider_down
      ;;
    status)
      _wb_step provider_status
      ;;
    logs)
      _wb_step provider_logs
      ;;
    url)
      _wb_print_url
      ;;
    *)
      wb_say "unknown action '${WB_RECIPE_ACTION:-}' in WB_RECIPE_ACTION;" \
        "expected one of: $WB_RECIPE_ACTIONS"
      exit 2
      ;;
  esac
}
