#!/bin/sh
# The one-shot deployer and activator of docker/compose.yaml. Every path, host and amount
# comes from an environment variable (defaults below), so the script runs outside a
# container too.
#
#   deployer.sh deploy     keys, members, feeds, fund, contracts, propose, publish
#   deployer.sh activate   `mira committee activate`: wait for the members' group key, then
#                          start the epoch (exits 0 once it is active)
#   deployer.sh STEP...    single steps:
#
#   keys       the owner's operator key in $MIRA_KEYS_DIR (created if absent)
#   members    wait for $MIRA_COMMITTEE_SIZE member files in $MIRA_SHARED/members and
#              write members.json (a JSON list, in file-name order) to $MIRA_HOME
#   feeds      the feed specs the network runs, to $MIRA_SHARED/feeds: by default every
#              spec of $MIRA_FEEDS_SRC with a replay source, released in real time from
#              one common start (so that every node replays the same row at the same time)
#   fund       send ether from $MIRA_FUNDER_ADDRESS (an account the RPC node unlocks, such
#              as anvil's first dev account) to the owner and to every member's operator;
#              skipped when $MIRA_FUNDER_ADDRESS is empty (fund them yourself on a real chain)
#   contracts  `mira deploy`: MiraOracle and the feeds, manifest to $MIRA_HOME/manifest.json
#   propose    `mira committee propose`: threshold $MIRA_THRESHOLD of the members
#   publish    the manifest and members.json to $MIRA_SHARED, the manifest last (the nodes
#              start on it)
set -eu

explicit_passphrase_file=${MIRA_PASSPHRASE_FILE:-}
: "${MIRA_HOME:=/data}"
: "${MIRA_SHARED:=/shared}"
: "${MIRA_KEYS_DIR:=$MIRA_HOME/keys}"
: "${MIRA_PASSPHRASE_FILE:=$MIRA_KEYS_DIR/passphrase}"
: "${MIRA_RPC_URL:=http://anvil:8545}"
: "${MIRA_COMMITTEE_SIZE:=4}"
: "${MIRA_THRESHOLD:=3}"
: "${MIRA_FEEDS_SRC:=/opt/mira/feeds}"
: "${MIRA_FEEDS:=}"                     # space-separated spec stems; empty: the replay feeds
: "${MIRA_HEARTBEAT_S:=10}"             # heartbeats longer than this are shortened to it
: "${MIRA_FUNDER_ADDRESS:=}"
: "${MIRA_FUND_OWNER:=100ether}"
: "${MIRA_FUND_NODE:=10ether}"
: "${MIRA_WAIT_TIMEOUT_S:=900}"
: "${MIRA_ACTIVATE_TIMEOUT_S:=900}"
: "${MIRA_PYTHON:=python3}"

say() { printf 'deployer.sh: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

json_field() {
  "$MIRA_PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"
}

# 0 if the manifest's oracle has code on the chain (checked only where cast is installed).
deployed() {
  [ -f "$1" ] || return 1
  command -v cast >/dev/null 2>&1 || return 0
  code=$(cast code --rpc-url "$MIRA_RPC_URL" "$(json_field "$1" oracle)") || die "cannot reach $MIRA_RPC_URL"
  [ "$code" != "0x" ]
}

step_keys() {
  if [ -f "$MIRA_KEYS_DIR/operator.json" ]; then
    say "owner key already in $MIRA_KEYS_DIR"
    return 0
  fi
  mkdir -p "$MIRA_KEYS_DIR"
  if [ ! -f "$MIRA_PASSPHRASE_FILE" ]; then
    [ -z "$explicit_passphrase_file" ] || die "passphrase file $MIRA_PASSPHRASE_FILE does not exist"
    (umask 077 && od -An -N32 -tx1 /dev/urandom | tr -d ' \n' > "$MIRA_PASSPHRASE_FILE")
  fi
  mira keys new --dir "$MIRA_KEYS_DIR" --passphrase-file "$MIRA_PASSPHRASE_FILE"
}

member_count() {
  n=0
  for f in "$MIRA_SHARED"/members/*.json; do [ ! -f "$f" ] || n=$((n + 1)); done
  echo "$n"
}

step_members() {
  waited=0
  while [ "$(member_count)" -lt "$MIRA_COMMITTEE_SIZE" ]; do
    [ "$waited" -lt "$MIRA_WAIT_TIMEOUT_S" ] ||
      die "$(member_count) of $MIRA_COMMITTEE_SIZE member files in $MIRA_SHARED/members after ${waited}s"
    [ $((waited % 30)) -ne 0 ] ||
      say "waiting for members: $(member_count) of $MIRA_COMMITTEE_SIZE in $MIRA_SHARED/members"
    sleep 1
    waited=$((waited + 1))
  done
  [ "$(member_count)" -eq "$MIRA_COMMITTEE_SIZE" ] ||
    die "$(member_count) member files in $MIRA_SHARED/members, expected $MIRA_COMMITTEE_SIZE"
  mkdir -p "$MIRA_HOME"
  "$MIRA_PYTHON" -c '
import json, sys
members = [json.load(open(p)) for p in sorted(sys.argv[1:])]
for m in members:
    assert set(m) == {"operator", "identity_key", "p2p_url"}, m
print(json.dumps(members, indent=2))' "$MIRA_SHARED"/members/*.json > "$MIRA_HOME/members.json"
  say "committee of $MIRA_COMMITTEE_SIZE in $MIRA_HOME/members.json"
}

# One spec as the compose network runs it (the devnet's rewrite, in awk): a replay source
# released in real time, one row a second from $2; heartbeats capped at $3 seconds.
compose_spec() {
  awk -v start="$2" -v hb="$3" '
    /^(step_ms|start_ms|passes|realtime)[ \t]*=/ { next }
    /^heartbeat_s[ \t]*=[ \t]*[0-9]+[ \t]*$/ {
      split($0, kv, "="); v = kv[2] + 0; if (v > hb) v = hb
      print "heartbeat_s = " v; next
    }
    { print }
    /^kind[ \t]*=[ \t]*"replay"[ \t]*$/ {
      print "realtime = true"; print "start_ms = " start; print "step_ms = 1000"; print "passes = 1000"
    }' "$1"
}

step_feeds() {
  dest="$MIRA_SHARED/feeds"
  mkdir -p "$dest"
  rm -f "$dest"/*.toml
  start_ms="$(date +%s)000"
  if [ -n "$MIRA_FEEDS" ]; then
    for stem in $MIRA_FEEDS; do
      [ -f "$MIRA_FEEDS_SRC/$stem.toml" ] || die "no feed spec $MIRA_FEEDS_SRC/$stem.toml"
      compose_spec "$MIRA_FEEDS_SRC/$stem.toml" "$start_ms" "$MIRA_HEARTBEAT_S" > "$dest/$stem.toml"
    done
  else
    for spec in "$MIRA_FEEDS_SRC"/*.toml; do
      grep -q '^kind[[:space:]]*=[[:space:]]*"replay"' "$spec" || continue
      compose_spec "$spec" "$start_ms" "$MIRA_HEARTBEAT_S" > "$dest/$(basename "$spec")"
    done
  fi
  set -- "$dest"/*.toml
  [ -f "$1" ] || die "no feed specs selected from $MIRA_FEEDS_SRC"
  say "feeds: $(cd "$dest" && echo *.toml)"
}

step_fund() {
  if [ -z "$MIRA_FUNDER_ADDRESS" ]; then
    say "MIRA_FUNDER_ADDRESS is empty: not funding (the owner and operators need ether)"
    return 0
  fi
  owner=$(mira keys show --dir "$MIRA_KEYS_DIR" --json | "$MIRA_PYTHON" -c \
    'import json, sys; print(json.load(sys.stdin)["operator"]["address"])')
  operators=$("$MIRA_PYTHON" -c \
    'import json, sys; print(" ".join(m["operator"] for m in json.load(open(sys.argv[1]))))' \
    "$MIRA_HOME/members.json")
  cast send --quiet --rpc-url "$MIRA_RPC_URL" --unlocked --from "$MIRA_FUNDER_ADDRESS" \
    --value "$MIRA_FUND_OWNER" "$owner" >/dev/null
  for operator in $operators; do
    cast send --quiet --rpc-url "$MIRA_RPC_URL" --unlocked --from "$MIRA_FUNDER_ADDRESS" \
      --value "$MIRA_FUND_NODE" "$operator" >/dev/null
  done
  say "funded the owner $owner ($MIRA_FUND_OWNER) and $MIRA_COMMITTEE_SIZE operators ($MIRA_FUND_NODE each)"
}

step_contracts() {
  mira deploy --rpc-url "$MIRA_RPC_URL" --feeds-dir "$MIRA_SHARED/feeds" \
    --keys-dir "$MIRA_KEYS_DIR" --passphrase-file "$MIRA_PASSPHRASE_FILE" \
    --out "$MIRA_HOME/manifest.json"
}

step_propose() {
  mira committee propose --rpc-url "$MIRA_RPC_URL" \
    --oracle "$(json_field "$MIRA_HOME/manifest.json" oracle)" \
    --keys-dir "$MIRA_KEYS_DIR" --passphrase-file "$MIRA_PASSPHRASE_FILE" \
    --threshold "$MIRA_THRESHOLD" --members-file "$MIRA_HOME/members.json"
}

step_publish() {
  cp "$MIRA_HOME/members.json" "$MIRA_SHARED/members.json"
  cp "$MIRA_HOME/manifest.json" "$MIRA_SHARED/manifest.json.tmp"
  mv "$MIRA_SHARED/manifest.json.tmp" "$MIRA_SHARED/manifest.json"
  say "published $MIRA_SHARED/manifest.json"
}

step_deploy() {
  if [ -f "$MIRA_SHARED/manifest.json" ]; then
    deployed "$MIRA_SHARED/manifest.json" ||
      die "$MIRA_SHARED/manifest.json names an oracle the chain does not have (a chain reset \
under an old deployment?): reset the deployment (docker compose down -v)"
    say "already deployed: $MIRA_SHARED/manifest.json"
    return 0
  fi
  for s in keys members feeds fund contracts propose publish; do "step_$s"; done
}

step_activate() {
  [ -f "$MIRA_SHARED/manifest.json" ] || die "no manifest at $MIRA_SHARED/manifest.json: deploy first"
  mira committee activate --rpc-url "$MIRA_RPC_URL" \
    --oracle "$(json_field "$MIRA_SHARED/manifest.json" oracle)" \
    --keys-dir "$MIRA_KEYS_DIR" --passphrase-file "$MIRA_PASSPHRASE_FILE" \
    --timeout "$MIRA_ACTIVATE_TIMEOUT_S"
}

[ "$#" -gt 0 ] || set -- deploy
for step in "$@"; do
  case "$step" in
    deploy | activate | keys | members | feeds | fund | contracts | propose | publish) "step_$step" ;;
    *) die "unknown step '$step' (deploy, activate, keys, members, feeds, fund, contracts, propose, publish)" ;;
  esac
done
