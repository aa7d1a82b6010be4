#!/bin/sh
# One Mira node of docker/compose.yaml. Every path, host and port comes from an environment
# variable (defaults below), so the script runs outside a container too.
#
#   node.sh [STEP...]      steps, in this order by default:
#
#   keys     create the operator and identity keys in $MIRA_KEYS_DIR if there are none (and
#            a random passphrase in $MIRA_PASSPHRASE_FILE if that file does not exist)
#   publish  write this member's public info (operator, identity key, p2p URL) to
#            $MIRA_SHARED/members/$MIRA_NODE_NAME.json for the deployer
#   wait     wait for the deployment manifest $MIRA_SHARED/manifest.json (written once the
#            oracle is deployed and the committee proposed) and check the oracle is on chain
#   config   write $MIRA_HOME/node.toml from the manifest and the variables below
#   migrate  `mira db upgrade`, retried while the database does not answer yet
#   run      exec `mira node run`: the DKG with the other members, then the rounds
set -eu

explicit_passphrase_file=${MIRA_PASSPHRASE_FILE:-}
: "${MIRA_HOME:=/data}"
: "${MIRA_SHARED:=/shared}"
: "${MIRA_NODE_NAME:=$(uname -n)}"
: "${MIRA_KEYS_DIR:=$MIRA_HOME/keys}"
: "${MIRA_PASSPHRASE_FILE:=$MIRA_KEYS_DIR/passphrase}"
: "${MIRA_CONFIG:=$MIRA_HOME/node.toml}"
: "${MIRA_MANIFEST:=$MIRA_SHARED/manifest.json}"
: "${MIRA_P2P_HOST:=$MIRA_NODE_NAME}"           # the host name peers reach this node at
: "${MIRA_P2P_PORT:=7701}"
: "${MIRA_P2P_LISTEN_HOST:=0.0.0.0}"
: "${MIRA_API_HOST:=0.0.0.0}"
: "${MIRA_API_PORT:=8080}"
: "${MIRA_RPC_URL:=http://anvil:8545}"
: "${MIRA_BACKUP_RPC_URLS:=}"                     # space-separated, for the tx manager's pool
: "${MIRA_DATABASE_URL:=sqlite:///node.sqlite}"   # relative SQLite paths: under $MIRA_HOME
: "${MIRA_FEEDS_DIR:=$MIRA_SHARED/feeds}"
: "${MIRA_FEEDS:=}"                               # space-separated spec stems; empty: all
: "${MIRA_ROUND_PERIOD_S:=1.0}"
: "${MIRA_OBSERVE_TIMEOUT_S:=0.5}"
: "${MIRA_TRANSMIT_TIMEOUT_S:=5.0}"
: "${MIRA_LOG_LEVEL:=info}"
: "${MIRA_WAIT_TIMEOUT_S:=900}"
: "${MIRA_DB_RETRIES:=30}"
: "${MIRA_PYTHON:=python3}"

say() { printf '%s node.sh: %s\n' "$MIRA_NODE_NAME" "$*" >&2; }
die() { say "error: $*"; exit 1; }

# A TOML basic string: backslashes and double quotes escaped.
toml_str() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"; }

# A TOML array of strings from a space-separated list.
toml_list() {
  out=""
  for item in $1; do out="$out${out:+, }$(toml_str "$item")"; done
  printf '[%s]' "$out"
}

# A top-level string field of a JSON file.
json_field() {
  "$MIRA_PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"
}

step_keys() {
  if [ -f "$MIRA_KEYS_DIR/operator.json" ] && [ -f "$MIRA_KEYS_DIR/identity.json" ]; then
    say "keys already in $MIRA_KEYS_DIR"
    return 0
  fi
  mkdir -p "$MIRA_KEYS_DIR"
  if [ ! -f "$MIRA_PASSPHRASE_FILE" ]; then
    [ -z "$explicit_passphrase_file" ] || die "passphrase file $MIRA_PASSPHRASE_FILE does not exist"
    (umask 077 && od -An -N32 -tx1 /dev/urandom | tr -d ' \n' > "$MIRA_PASSPHRASE_FILE")
    say "generated a random key passphrase in $MIRA_PASSPHRASE_FILE"
  fi
  mira keys new --dir "$MIRA_KEYS_DIR" --passphrase-file "$MIRA_PASSPHRASE_FILE"
}

step_publish() {
  mkdir -p "$MIRA_SHARED/members"
  target="$MIRA_SHARED/members/$MIRA_NODE_NAME.json"
  mira keys show --dir "$MIRA_KEYS_DIR" --json | "$MIRA_PYTHON" -c '
import json, sys
keys = json.load(sys.stdin)
identity = keys["identity"]["public_key"]
print(json.dumps({
    "operator": keys["operator"]["address"],
    "identity_key": identity if identity.startswith("0x") else "0x" + identity,
    "p2p_url": sys.argv[1],
}, sort_keys=True))' "http://$MIRA_P2P_HOST:$MIRA_P2P_PORT" > "$target.tmp"
  mv "$target.tmp" "$target"
  say "published $target"
}

step_wait() {
  waited=0
  while [ ! -f "$MIRA_MANIFEST" ]; do
    [ "$waited" -lt "$MIRA_WAIT_TIMEOUT_S" ] || die "no manifest at $MIRA_MANIFEST after ${waited}s"
    [ $((waited % 30)) -ne 0 ] || say "waiting for the deployment manifest $MIRA_MANIFEST"
    sleep 1
    waited=$((waited + 1))
  done
  oracle=$(json_field "$MIRA_MANIFEST" oracle)
  if command -v cast >/dev/null 2>&1; then
    code=$(cast code --rpc-url "$MIRA_RPC_URL" "$oracle") || die "cannot reach $MIRA_RPC_URL"
    [ "$code" != "0x" ] || die "no MiraOracle at $oracle on $MIRA_RPC_URL (a chain reset under \
an old manifest?): reset the deployment (docker compose down -v)"
  fi
  say "MiraOracle at $oracle"
}

step_config() {
  [ -f "$MIRA_MANIFEST" ] || die "no manifest at $MIRA_MANIFEST"
  oracle=$(json_field "$MIRA_MANIFEST" oracle)
  feeds_line=""
  [ -z "$MIRA_FEEDS" ] || feeds_line="feeds = $(toml_list "$MIRA_FEEDS")"
  backups_line=""
  [ -z "$MIRA_BACKUP_RPC_URLS" ] || backups_line="backup_rpc_urls = $(toml_list "$MIRA_BACKUP_RPC_URLS")"
  mkdir -p "$(dirname "$MIRA_CONFIG")"
  cat > "$MIRA_CONFIG.tmp" <<EOF
# Written by docker/node.sh from the deployment manifest; rewritten on every start.
[node]
name = $(toml_str "$MIRA_NODE_NAME")
feeds_dir = $(toml_str "$MIRA_FEEDS_DIR")
$feeds_line

[database]
url = $(toml_str "$MIRA_DATABASE_URL")

[api]
host = $(toml_str "$MIRA_API_HOST")
port = $MIRA_API_PORT

[log]
level = $(toml_str "$MIRA_LOG_LEVEL")
format = "json"

[network]
listen_host = $(toml_str "$MIRA_P2P_LISTEN_HOST")
listen_port = $MIRA_P2P_PORT
rpc_url = $(toml_str "$MIRA_RPC_URL")
$backups_line
oracle = $(toml_str "$oracle")
keys_dir = $(toml_str "$MIRA_KEYS_DIR")
passphrase_file = $(toml_str "$MIRA_PASSPHRASE_FILE")
round_period_s = $MIRA_ROUND_PERIOD_S
observe_timeout_s = $MIRA_OBSERVE_TIMEOUT_S
transmit_timeout_s = $MIRA_TRANSMIT_TIMEOUT_S
EOF
  mv "$MIRA_CONFIG.tmp" "$MIRA_CONFIG"
  say "wrote $MIRA_CONFIG"
}

step_migrate() {
  tries=1
  until mira db upgrade --config "$MIRA_CONFIG"; do
    [ "$tries" -lt "$MIRA_DB_RETRIES" ] || die "the database did not accept the migrations"
    say "database not ready (try $tries of $MIRA_DB_RETRIES); retrying in 2 s"
    sleep 2
    tries=$((tries + 1))
  done
}

step_run() {
  exec mira node run --config "$MIRA_CONFIG"
}

[ "$#" -gt 0 ] || set -- keys publish wait config migrate run
for step in "$@"; do
  case "$step" in
    keys | publish | wait | config | migrate | run) "step_$step" ;;
    *) die "unknown step '$step' (keys, publish, wait, config, migrate, run)" ;;
  esac
done
