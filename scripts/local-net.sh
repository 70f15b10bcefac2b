#!/usr/bin/env bash
# A local Sync Registry network in one command.
#
#   scripts/local-net.sh up     [--replicas N] [--primaries M] [--dir D] [--base-port P]
#                               [--wait] [--timeout S] [--build] [-- NODE_ARGS...]
#   scripts/local-net.sh status [--dir D]
#   scripts/local-net.sh down   [--dir D] [--timeout S]
#
# `up` starts the `local` chain's three authorities (alice: Primary, bob: Replica, charlie:
# Primary; `--alice` & co. put the dev session and `sync` keys into their keystores) and N extra
# Replicas and M extra Primaries (non-authorities, each with the `sync` key of a funded dev
# account inserted into its keystore: //Dave, //Eve, //Ferdie, then //Alice//stash …
# //Ferdie//stash). Every node runs its data plane, registers itself (`--sync-register`), serves
# the HTTP object API and Prometheus metrics, on loopback. Node i (alice is 0) uses the five
# consecutive ports P+5i … P+5i+4: RPC, p2p, data plane, HTTP object API, Prometheus.
# NODE_ARGS after `--` go to every node (e.g. `-- --sync-commit-every 4`). `up` refuses a
# directory with a running network in it and ports in use; it returns once every node answers
# (with `--wait`: once every node is registered on chain, no `not_registered` in its
# sync_health), within `--timeout` (180 s), and on failure stops what it started.
#
# The directory (default ${TMPDIR:-/tmp}/sync-local-net) holds each node's base path and log,
# `network.tsv` (name, role, account, pid, ports), and `prometheus.yml` (every node's metrics,
# the alert rules of deploy/prometheus). `status` prints each node's pid, whether it runs, and
# its sync_health. `down` stops the nodes of that directory (SIGTERM, then SIGKILL after
# `--timeout`, 20 s) and removes it (only a directory `up` made).
#
# The node binary: $SYNC_NODE_BIN, else $CARGO_TARGET_DIR/release/sync-node (default target
# ~/.cache/sync-registry/target); `--build` builds that one first, as scripts/dev.sh does, and
# uses it.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
prog="scripts/local-net.sh"
marker=".sync-local-net"
state_file="network.tsv"

# Extra (non-authority) nodes: name and dev account, in the order they are handed out.
extra_names=(dave eve ferdie alice-stash bob-stash charlie-stash dave-stash eve-stash ferdie-stash)
extra_suris=(//Dave //Eve //Ferdie //Alice//stash //Bob//stash //Charlie//stash //Dave//stash //Eve//stash //Ferdie//stash)

die() { echo "$prog: $*" >&2; exit 1; }
log() { echo "[local-net] $*" >&2; }

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | grep '^#' | sed 's/^# \{0,1\}//'
}

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }
num_arg() { [ -n "$1" ] && is_uint "$1"; }

# --- arguments -----------------------------------------------------------------------------
cmd="${1:-}"
[ $# -gt 0 ] && shift
dir="${TMPDIR:-/tmp}/sync-local-net"
base_port=20000
replicas=0
primaries=0
timeout_s=""
wait_registered=0
build=0
node_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) [ $# -ge 2 ] || die "--dir needs a value"; dir="$2"; shift 2 ;;
    --base-port) num_arg "${2:-}" || die "--base-port needs a number"; base_port="$2"; shift 2 ;;
    --replicas) num_arg "${2:-}" || die "--replicas needs a number"; replicas="$2"; shift 2 ;;
    --primaries) num_arg "${2:-}" || die "--primaries needs a number"; primaries="$2"; shift 2 ;;
    --timeout) num_arg "${2:-}" || die "--timeout needs seconds"; timeout_s="$2"; shift 2 ;;
    --wait) wait_registered=1; shift ;;
    --build) build=1; shift ;;
    --) shift; node_args=("$@"); break ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument '$1' (try --help)" ;;
  esac
done
# An absolute path: the state records it, and `down` checks that a pid's command line has it.
case "$dir" in
  /*) ;;
  *) dir="$PWD/$dir" ;;
esac
while [ "${#dir}" -gt 1 ] && [ "${dir%/}" != "$dir" ]; do dir="${dir%/}"; done
[ "$dir" != / ] || die "--dir / is not a network directory"

# --- helpers -------------------------------------------------------------------------------
node_binary() {
  if [ -n "${SYNC_NODE_BIN:-}" ]; then
    [ -x "$SYNC_NODE_BIN" ] || die "SYNC_NODE_BIN=$SYNC_NODE_BIN is not an executable"
    echo "$SYNC_NODE_BIN"
    return
  fi
  local bin="${CARGO_TARGET_DIR:-$HOME/.cache/sync-registry/target}/release/sync-node"
  [ -x "$bin" ] || die "sync-node not found at $bin: build it (\`$prog up --build\`, or
  \`bash scripts/setup.sh && source scripts/.env && cargo build --release --locked -p sync-node\`)
  or set SYNC_NODE_BIN"
  echo "$bin"
}

build_node() {
  log "building sync-node (release), as scripts/dev.sh does"
  (
    cd "$root"
    bash scripts/setup.sh
    # shellcheck disable=SC1091
    source scripts/.env
    cargo build --release --locked -p sync-node
  )
  # scripts/.env defaults CARGO_TARGET_DIR to the same directory node_binary looks in.
}

# Whether pid $1 is a running (not zombie) process whose command line names this network's dir.
ours_alive() {
  local pid="$1" stat args
  stat="$(ps -o stat= -p "$pid" 2>/dev/null)" || return 1
  [[ $stat == Z* ]] && return 1
  args="$(ps -o args= -p "$pid" 2>/dev/null)" || return 1
  [[ $args == *"$dir/"* ]]
}

# Whether something listens on TCP port $1 (any address).
port_taken() {
  local p="$1"
  if command -v ss >/dev/null 2>&1; then
    [ -n "$(ss -Htln "sport = :$p" 2>/dev/null)" ] && return 0
  fi
  (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null
}

# JSON-RPC call over HTTP: rpc PORT METHOD → the raw JSON answer (fails if none).
rpc() {
  curl -sf --max-time 5 -H 'Content-Type: application/json' \
    -d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"$2\",\"params\":[]}" "http://127.0.0.1:$1"
}

# The `result` of `sync_health` on RPC port $1 (fails if the node does not answer).
health_of() {
  local answer
  answer="$(rpc "$1" sync_health)" || return 1
  [[ $answer == *'"result":'* ]] || return 1
  answer="${answer#*\"result\":}"
  echo "${answer%\}}"
}

# The state file's rows, without its header: name role account authority pid rpc p2p data http prom.
rows() { grep -v '^#' "$dir/$state_file" || true; }

# Pids of the state file that are still running.
alive_pids() {
  local name role account authority pid rest
  [ -f "$dir/$state_file" ] || return 0
  while read -r name role account authority pid rest; do
    if ours_alive "$pid"; then echo "$pid"; fi
  done < <(rows)
}

# Stops pids "$@": SIGTERM, then SIGKILL after $1 seconds. Returns once all are gone.
stop_pids() {
  local grace="$1" pid deadline left
  shift
  [ $# -gt 0 ] || return 0
  kill -TERM "$@" 2>/dev/null || true
  deadline=$((SECONDS + grace))
  while :; do
    left=()
    for pid in "$@"; do
      if ours_alive "$pid"; then left+=("$pid"); fi
    done
    [ ${#left[@]} -gt 0 ] || return 0
    if [ $SECONDS -ge $deadline ]; then
      log "SIGKILL to ${left[*]} (still running after ${grace} s)"
      kill -KILL "${left[@]}" 2>/dev/null || true
      sleep 1
      for pid in "${left[@]}"; do
        if ours_alive "$pid"; then die "pid $pid survived SIGKILL"; fi
      done
      return 0
    fi
    sleep 0.5
  done
}

endpoints() {
  local name="$1" role="$2" account="$3" authority="$4" rpc_p="$5" data_p="$6" http_p="$7" prom_p="$8"
  local kind="non-authority"
  [ "$authority" = yes ] && kind="authority"
  printf '%s  %s, %s, account %s\n' "$name" "$role" "$kind" "$account"
  printf '  RPC         ws://127.0.0.1:%s  (HTTP JSON-RPC on the same port)\n' "$rpc_p"
  printf '  Apps        https://polkadot.js.org/apps/?rpc=ws%%3A%%2F%%2F127.0.0.1%%3A%s#/explorer\n' "$rpc_p"
  printf '  object API  http://127.0.0.1:%s/v1/segments/{segment}/objects/{key}  (health: /health)\n' "$http_p"
  printf '  metrics     http://127.0.0.1:%s/metrics\n' "$prom_p"
  printf '  data plane  /ip4/127.0.0.1/tcp/%s\n' "$data_p"
  printf '  log         %s/%s/node.log\n' "$dir" "$name"
}

# --- up ------------------------------------------------------------------------------------
started_pids=()
up_done=0
# A failed or interrupted `up` stops what it started (the logs stay in the directory).
on_up_exit() {
  local rc=$?
  if [ "$up_done" -eq 1 ] || [ ${#started_pids[@]} -eq 0 ]; then return 0; fi
  stop_pids 10 "${started_pids[@]}"
  log "up failed (exit $rc): stopped what it started; logs kept in $dir (\`$prog down --dir $dir\` removes it)"
}
up_failed() {
  local why="$1" name="${2:-}"
  log "up failed: $why"
  if [ -n "$name" ] && [ -f "$dir/$name/node.log" ]; then
    echo "--- last lines of $dir/$name/node.log ---" >&2
    tail -n 30 "$dir/$name/node.log" >&2
    echo "---" >&2
  fi
  exit 1
}

cmd_up() {
  local extras=$((replicas + primaries))
  [ "$extras" -le ${#extra_names[@]} ] ||
    die "at most ${#extra_names[@]} extra nodes (--replicas + --primaries): one funded dev account each"
  local count=$((3 + extras)) grace="${timeout_s:-180}"
  local last_port=$((base_port + 5 * count - 1))
  if [ "$base_port" -lt 1024 ] || [ "$last_port" -gt 65535 ]; then
    die "ports $base_port…$last_port are out of range (1024…65535)"
  fi
  command -v curl >/dev/null 2>&1 || die "curl is needed (JSON-RPC readiness checks)"

  # One network per directory.
  if [ -e "$dir" ]; then
    if [ -f "$dir/$marker" ]; then
      local running
      running="$(alive_pids | tr '\n' ' ')"
      [ -z "$running" ] || die "a network is already running in $dir (pids ${running% }); \`$prog down --dir $dir\` first"
      log "removing the stopped network left in $dir"
      rm -rf -- "$dir"
    elif [ -n "$(ls -A "$dir" 2>/dev/null)" ]; then
      die "$dir exists and is not a local-net directory: pick another --dir"
    fi
  fi
  local p taken=()
  for ((p = base_port; p <= last_port; p++)); do
    port_taken "$p" && taken+=("$p")
  done
  [ ${#taken[@]} -eq 0 ] || die "port(s) ${taken[*]} already in use (this network needs $base_port…$last_port): pick another --base-port"

  local bin detach=nohup
  if [ "$build" -eq 1 ]; then
    build_node
    bin="${CARGO_TARGET_DIR:-$HOME/.cache/sync-registry/target}/release/sync-node"
  else
    bin="$(node_binary)"
  fi
  command -v setsid >/dev/null 2>&1 && detach=setsid

  mkdir -p "$dir"
  echo "$bin" >"$dir/$marker"
  printf '# name\trole\taccount\tauthority\tpid\trpc\tp2p\tdata\thttp\tprometheus\n' >"$dir/$state_file"
  trap on_up_exit EXIT
  trap 'exit 130' INT TERM

  # The plan: name role account authority-flag.
  local names=(alice bob charlie) roles=(primary replica primary) suris=(//Alice //Bob //Charlie)
  local flags=(--alice --bob --charlie) i
  for ((i = 0; i < extras; i++)); do
    names+=("${extra_names[$i]}")
    suris+=("${extra_suris[$i]}")
    flags+=("")
    if [ "$i" -lt "$replicas" ]; then roles+=(replica); else roles+=(primary); fi
  done

  local boot="" name role pid rpc_p p2p_p data_p http_p prom_p authority node_dir
  for ((i = 0; i < count; i++)); do
    name="${names[$i]}"
    role="${roles[$i]}"
    node_dir="$dir/$name"
    rpc_p=$((base_port + 5 * i)); p2p_p=$((rpc_p + 1)); data_p=$((rpc_p + 2)); http_p=$((rpc_p + 3)); prom_p=$((rpc_p + 4))
    mkdir -p "$node_dir"
    "$bin" key generate-node-key --file "$node_dir/node-key" 2>/dev/null
    local args=(--chain local --name "$name" --base-path "$node_dir" --node-key-file "$node_dir/node-key"
      --port "$p2p_p" --rpc-port "$rpc_p" --rpc-cors all --prometheus-port "$prom_p"
      --no-telemetry --no-mdns
      --sync-role "$role" --sync-listen-addr "/ip4/127.0.0.1/tcp/$data_p"
      --sync-http-addr "127.0.0.1:$http_p" --sync-register)
    if [ -n "${flags[$i]}" ]; then
      authority=yes
      args+=("${flags[$i]}")
    else
      authority=no
      # A non-authority signs its duties with the dev account's `sync` key, put in its keystore.
      "$bin" key insert --chain local --base-path "$node_dir" --key-type sync --scheme sr25519 \
        --suri "${suris[$i]}" >/dev/null 2>&1 || up_failed "inserting the sync key of $name"
    fi
    if [ -z "$boot" ]; then
      boot="/ip4/127.0.0.1/tcp/$p2p_p/p2p/$("$bin" key inspect-node-key --file "$node_dir/node-key")"
    else
      args+=(--bootnodes "$boot")
    fi
    # Its own session (where setsid exists), so the nodes outlive this script and a hangup of
    # its terminal.
    $detach "$bin" "${args[@]}" ${node_args[@]+"${node_args[@]}"} >"$node_dir/node.log" 2>&1 </dev/null &
    pid=$!
    started_pids+=("$pid")
    local role_name="Primary"
    [ "$role" = replica ] && role_name="Replica"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$role_name" "${suris[$i]}" "$authority" \
      "$pid" "$rpc_p" "$p2p_p" "$data_p" "$http_p" "$prom_p" >>"$dir/$state_file"
  done

  # prometheus.yml for this network: every node, the alert rules of deploy/.
  {
    echo "# Written by $prog for the network in $dir: prometheus --config.file $dir/prometheus.yml"
    echo "global:"
    echo "  scrape_interval: 6s"
    echo "  evaluation_interval: 6s"
    echo "rule_files:"
    echo "  - $root/deploy/prometheus/alerts.yml"
    echo "scrape_configs:"
    echo "  - job_name: sync-node"
    echo "    static_configs:"
    local targets="" account
    while read -r name role account authority pid rpc_p p2p_p data_p http_p prom_p; do
      targets="${targets:+$targets, }\"127.0.0.1:$prom_p\""
    done < <(rows)
    echo "      - targets: [$targets]"
  } >"$dir/prometheus.yml"

  # Ready: every node answers sync_health on its RPC port and /health on its HTTP port (the
  # data plane started).
  local deadline=$((SECONDS + grace)) pending code
  while :; do
    pending=()
    while read -r name role account authority pid rpc_p p2p_p data_p http_p rest; do
      ours_alive "$pid" || up_failed "$name exited" "$name"
      code="$(curl -s -o /dev/null --max-time 5 -w '%{http_code}' "http://127.0.0.1:$http_p/health" || true)"
      if ! rpc "$rpc_p" sync_health >/dev/null 2>&1 || [ "${code:-000}" = 000 ]; then pending+=("$name"); fi
    done < <(rows)
    [ ${#pending[@]} -eq 0 ] && break
    [ $SECONDS -lt $deadline ] || up_failed "not ready after ${grace} s: ${pending[*]}" "${pending[0]}"
    sleep 1
  done
  log "all $count nodes answer (binary $bin)"

  if [ "$wait_registered" -eq 1 ]; then
    log "waiting until every node is registered on chain (sync_health: no not_registered)"
    while :; do
      pending=()
      while read -r name role account authority pid rpc_p rest; do
        ours_alive "$pid" || up_failed "$name exited" "$name"
        local h
        h="$(health_of "$rpc_p" 2>/dev/null || true)"
        if [ -z "$h" ] || [[ $h == *'"not_registered"'* ]] || [[ $h == *'"waiting_for_chain"'* ]]; then
          pending+=("$name")
        fi
      done < <(rows)
      [ ${#pending[@]} -eq 0 ] && break
      [ $SECONDS -lt $deadline ] || up_failed "not registered after ${grace} s: ${pending[*]}" "${pending[0]}"
      sleep 2
    done
    log "every node is registered"
  fi
  up_done=1
  trap - INT TERM

  echo
  while read -r name role account authority pid rpc_p p2p_p data_p http_p prom_p; do
    endpoints "$name" "$role" "$account" "$authority" "$rpc_p" "$data_p" "$http_p" "$prom_p"
  done < <(rows)
  echo
  echo "state:      $dir/$state_file"
  echo "prometheus: prometheus --config.file $dir/prometheus.yml   (dashboard: deploy/grafana/sync-dashboard.json)"
  echo "status:     $prog status --dir $dir"
  echo "stop:       $prog down --dir $dir"
}

# --- status --------------------------------------------------------------------------------
cmd_status() {
  if [ ! -f "$dir/$marker" ] || [ ! -f "$dir/$state_file" ]; then die "no local network in $dir"; fi
  local name role account authority pid rpc_p rest h status codes
  printf '%-14s %-8s %-8s %-6s %-10s %s\n' NODE ROLE PID STATE HEALTH REASONS
  while read -r name role account authority pid rpc_p rest; do
    if ours_alive "$pid"; then
      h="$(health_of "$rpc_p" 2>/dev/null || true)"
      if [ -n "$h" ]; then
        # The top-level `status` (segments carry `chainStatus`, reasons `level`).
        status="$( (grep -o '"status":"[a-z]*"' <<<"$h" || true) | head -n 1 | cut -d'"' -f4)"
        codes="$( (grep -o '"code":"[a-z_]*"' <<<"$h" || true) | cut -d'"' -f4 | paste -sd, -)"
      else
        status="no-answer"
        codes=""
      fi
      printf '%-14s %-8s %-8s %-6s %-10s %s\n' "$name" "$role" "$pid" alive "${status:-?}" "${codes:--}"
      [ -n "$h" ] && printf '  sync_health %s\n' "$h"
    else
      printf '%-14s %-8s %-8s %-6s %-10s %s\n' "$name" "$role" "$pid" dead - "log: $dir/$name/node.log"
    fi
  done < <(rows)
}

# --- down ----------------------------------------------------------------------------------
cmd_down() {
  if [ ! -e "$dir" ]; then
    log "nothing in $dir"
    return 0
  fi
  [ -f "$dir/$marker" ] || die "$dir is not a local-net directory (no $marker): not touching it"
  local pids=()
  mapfile -t pids < <(alive_pids)
  if [ ${#pids[@]} -gt 0 ]; then
    log "stopping ${#pids[@]} node(s): ${pids[*]}"
    stop_pids "${timeout_s:-20}" "${pids[@]}"
  fi
  rm -rf -- "$dir"
  log "stopped; removed $dir"
}

case "$cmd" in
  up) cmd_up ;;
  status) cmd_status ;;
  down) cmd_down ;;
  -h | --help | help) usage ;;
  "") usage >&2; exit 2 ;;
  *) die "unknown command '$cmd' (up, status, down)" ;;
esac
