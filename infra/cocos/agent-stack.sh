#!/usr/bin/env bash
# Starts the real Cocos v0.10.2 agent stack as plain processes on this machine, in NoCC mode (no TEE,
# no attested TLS, unverifiable sample attestation): what one Cocos agent VM runs, without the VM.
# INSECURE, NO HARDWARE PROTECTION: for conformance tests of Prism against the real agent only.
#
#   infra/cocos/agent-stack.sh [options]
#
# Start order (each waits for the previous one to report ready):
#   1. log-forwarder       /run/cocos/log.sock; opens its own Service.Process stream to the control
#                          plane (metadata job-id, connection-type: log-forwarder) and EXITS if that fails
#   2. attestation-service /run/cocos/attestation.sock, USE_CC_ATTESTATION_AGENT=false (EmptyProvider)
#   3. computation-runner  /run/cocos/runner.sock, in the working directory
#   4. agent               dials the control plane (exits if the first dial fails, then reconnects
#                          every 5 s), pending messages in /var/lib/cocos/agent/pending_messages.json;
#                          after a run request: /run/cocos/agent.sock and ingress on 0.0.0.0:7002
# So the control plane must already listen. The paths are fixed in the Cocos programs: one stack per
# host (or per mount+network namespace); a lock file enforces it.
#
# Options (each also read from the environment variable named in brackets):
#   --url HOST:PORT        control plane [AGENT_CVM_GRPC_URL], default localhost:7001
#   --cvm-id ID            sent as gRPC metadata job-id [AGENT_CVM_ID]; empty: no metadata at all
#   --client-cert FILE     agent's client certificate, PEM [AGENT_CVM_GRPC_CLIENT_CERT]
#   --client-key FILE      its key, PEM [AGENT_CVM_GRPC_CLIENT_KEY]
#   --server-ca FILE       CA of the control plane's server certificate [AGENT_CVM_GRPC_SERVER_CA_CERTS]
#                          (none of the three: h2c; CA only: TLS; cert+key: mTLS)
#   --env-file FILE        KEY=VALUE lines as the Cocos manager writes them (its "environment" file);
#                          the options above override it; other keys are passed to every process
#   --certs-dir DIR        where the /etc/certs/*.pem paths named in --env-file really are
#   --work-dir DIR         working directory of agent and runner (./algo, ./datasets, ./results);
#                          default: a new directory under ${TMPDIR:-/tmp}
#   --log-dir DIR          one log file per process (stdout+stderr); default: WORK_DIR/logs
#   --bin-dir DIR          the Cocos binaries; default: what build.sh prints (it honours PRISM_COCOS_BIN
#                          and builds only when they are missing or stale)
#   --log-level LEVEL      debug|info|warn|error for all four [AGENT_LOG_LEVEL], default debug
#   --env NAME=VALUE       extra environment for all four processes (repeatable)
#   --keep-pending         keep /var/lib/cocos/agent/pending_messages.json (default: delete it)
#   --restart              restart a process 5 s after it exits, like upstream's systemd units
#                          (default: when any process exits, stop the whole stack and fail)
#   --ready-timeout SECS   per process, default 30
#   --stop-timeout SECS    wait after SIGTERM, then SIGKILL; default 3. The programs stop their work at
#                          once on SIGTERM, but then need 11 s or more to exit: their log client retries
#                          each pending log line for ~11 s with the cancelled context. 0: SIGKILL at once
#
# Stdout: one line "agent-stack: ready work_dir=… log_dir=… pids=agent:N,…" once all four run, and
# "agent-stack: stopped" at the end; everything else goes to stderr. SIGTERM or SIGINT stops the stack
# (exit 0). Exit 1: a process exited on its own (its log tail is printed); 2: bad usage or environment.
# Needs root (or write access to /run/cocos and /var/lib/cocos) and bash >= 5.1.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
me="agent-stack"
exec 3>&2 # our messages; stderr itself is silenced while stopping (bash's "Killed" job notices)
say() { echo "$me: $*" >&3; }
die() { say "$*"; exit 2; }

((BASH_VERSINFO[0] > 5 || (BASH_VERSINFO[0] == 5 && BASH_VERSINFO[1] >= 1))) || die "bash >= 5.1 is required"

# ---------------------------------------------------------------------------------------------------
# Options.
opt_url="" opt_id="" opt_id_set=0 opt_cert="" opt_key="" opt_ca="" env_file="" certs_dir=""
work_dir="" log_dir="" bin_dir="" opt_level="" keep_pending=0 restart=0
ready_timeout=30 stop_timeout=3
extra_env=()
while (($#)); do
  case $1 in
    --url) opt_url=${2:?}; shift ;;
    --cvm-id) opt_id=${2?}; opt_id_set=1; shift ;;
    --client-cert) opt_cert=${2:?}; shift ;;
    --client-key) opt_key=${2:?}; shift ;;
    --server-ca) opt_ca=${2:?}; shift ;;
    --env-file) env_file=${2:?}; shift ;;
    --certs-dir) certs_dir=${2:?}; shift ;;
    --work-dir) work_dir=${2:?}; shift ;;
    --log-dir) log_dir=${2:?}; shift ;;
    --bin-dir) bin_dir=${2:?}; shift ;;
    --log-level) opt_level=${2:?}; shift ;;
    --env) [[ ${2:?} == [A-Za-z_]*=* ]] || die "--env wants NAME=VALUE, not $2"; extra_env+=("$2"); shift ;;
    --keep-pending) keep_pending=1 ;;
    --restart) restart=1 ;;
    --ready-timeout) ready_timeout=${2:?}; shift ;;
    --stop-timeout) stop_timeout=${2:?}; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
  shift
done
[[ $ready_timeout =~ ^[0-9]+$ && $stop_timeout =~ ^[0-9]+$ ]] || die "timeouts are whole seconds"

# Defaults < caller's environment < --env-file < options.
url="${AGENT_CVM_GRPC_URL:-localhost:7001}"
cvm_id="${AGENT_CVM_ID:-}"
client_cert="${AGENT_CVM_GRPC_CLIENT_CERT:-}"
client_key="${AGENT_CVM_GRPC_CLIENT_KEY:-}"
server_ca="${AGENT_CVM_GRPC_SERVER_CA_CERTS:-}"
log_level="${AGENT_LOG_LEVEL:-debug}"
if [[ -n $env_file ]]; then
  [[ -r $env_file ]] || die "cannot read --env-file $env_file"
  file_env=()
  while IFS= read -r line || [[ -n $line ]]; do
    line=${line%$'\r'}
    [[ -z ${line//[[:space:]]/} || $line == \#* ]] && continue
    [[ $line == *=* ]] || die "$env_file: not KEY=VALUE: $line"
    key=${line%%=*} val=${line#*=}
    [[ $key =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "$env_file: bad variable name: $key"
    if [[ -n $certs_dir && $val == /etc/certs/* ]]; then val="$certs_dir/${val#/etc/certs/}"; fi
    case $key in
      AGENT_CVM_GRPC_URL) [[ -z $val ]] || url=$val ;;
      AGENT_CVM_ID) cvm_id=$val ;;
      AGENT_CVM_GRPC_CLIENT_CERT) client_cert=$val ;;
      AGENT_CVM_GRPC_CLIENT_KEY) client_key=$val ;;
      AGENT_CVM_GRPC_SERVER_CA_CERTS) server_ca=$val ;;
      AGENT_LOG_LEVEL) [[ -z $val ]] || log_level=$val ;;
      *) file_env+=("$key=$val") ;;
    esac
  done <"$env_file"
  extra_env=("${file_env[@]}" "${extra_env[@]}")
fi
[[ -z $opt_url ]] || url=$opt_url
((opt_id_set == 0)) || cvm_id=$opt_id
[[ -z $opt_cert ]] || client_cert=$opt_cert
[[ -z $opt_key ]] || client_key=$opt_key
[[ -z $opt_ca ]] || server_ca=$opt_ca
[[ -z $opt_level ]] || log_level=$opt_level

case $log_level in debug | info | warn | error | DEBUG | INFO | WARN | ERROR) ;; *) die "bad log level: $log_level" ;; esac
[[ -n $client_cert && -z $client_key || -z $client_cert && -n $client_key ]] &&
  die "the client certificate and key go together (got cert='$client_cert' key='$client_key')"
for f in "$client_cert" "$client_key" "$server_ca"; do
  [[ -z $f || -r $f ]] || die "cannot read $f"
done
# Relative paths would be resolved in the working directory by the programs: make them absolute.
abs() { [[ -z $1 || $1 == /* ]] && echo "$1" || echo "$PWD/$1"; }
client_cert=$(abs "$client_cert") client_key=$(abs "$client_key") server_ca=$(abs "$server_ca")

# ---------------------------------------------------------------------------------------------------
# The machine.
# Cocos probes /dev/sev-guest and /dev/tdx_guest, and with a TPM present it asks the Azure metadata
# service at 169.254.169.254 (no timeout): only a machine without any of them is NoCC.
for dev in /dev/tpmrm0 /dev/tpm0 /dev/sev-guest /dev/tdx_guest; do
  if [[ -e $dev && ${PRISM_COCOS_ALLOW_TEE_DEVICES:-0} != 1 ]]; then
    die "$dev exists: this machine is not NoCC (a TPM also makes Cocos call the Azure metadata service at 169.254.169.254). Run in a mount namespace without it, or set PRISM_COCOS_ALLOW_TEE_DEVICES=1 if you mean it"
  fi
done
mkdir -p /run/cocos /var/lib/cocos/agent 2>/dev/null ||
  die "cannot create /run/cocos and /var/lib/cocos/agent (fixed paths of the Cocos programs): run as root"

exec 8>/run/cocos/.prism-agent-stack.lock
flock -n 8 || die "another agent stack runs on this host (lock /run/cocos/.prism-agent-stack.lock); the Cocos programs use fixed socket paths, so only one stack fits per mount namespace"

if command -v ss >/dev/null && [[ -n "$(ss -Hltn 'sport = :7002' 2>/dev/null)" ]]; then
  say "warning: TCP port 7002 is already in use: the agent's ingress will fail to start after a run request"
fi

if [[ -z $bin_dir ]]; then
  bin_dir="$("$here/build.sh" | tail -n1)" || die "building the Cocos programs failed"
fi
programs=(log-forwarder attestation-service computation-runner agent)
for p in "${programs[@]}"; do [[ -x $bin_dir/$p ]] || die "$bin_dir/$p is missing (run infra/cocos/build.sh)"; done

if [[ -z $work_dir ]]; then
  work_dir="$(mktemp -d "${TMPDIR:-/tmp}/prism-cocos-agent.XXXXXX")"
else
  mkdir -p "$work_dir"
fi
work_dir="$(cd "$work_dir" && pwd)"
log_dir="${log_dir:-$work_dir/logs}"
mkdir -p "$log_dir"
log_dir="$(cd "$log_dir" && pwd)"

((keep_pending)) || rm -f /var/lib/cocos/agent/pending_messages.json

# ---------------------------------------------------------------------------------------------------
# Processes. Each runs with exactly this environment (env -i: nothing leaks in from the caller, e.g.
# AGENT_GRPC_HOST or HTTP_PROXY), in its own process group (setsid) so that stopping it also stops
# the algorithms the runner started.
base_env=("PATH=$PATH" "HOME=${HOME:-/root}")
[[ -z ${TMPDIR:-} ]] || base_env+=("TMPDIR=$TMPDIR")
cvm_env=(
  "AGENT_LOG_LEVEL=$log_level"
  "AGENT_CVM_GRPC_URL=$url"
  "AGENT_CVM_ID=$cvm_id"
  "AGENT_CVM_GRPC_CLIENT_CERT=$client_cert"
  "AGENT_CVM_GRPC_CLIENT_KEY=$client_key"
  "AGENT_CVM_GRPC_SERVER_CA_CERTS=$server_ca"
)

env_of() {
  case $1 in
    log-forwarder | computation-runner | agent) printf '%s\0' "${base_env[@]}" "${cvm_env[@]}" "${extra_env[@]}" ;;
    attestation-service)
      printf '%s\0' "${base_env[@]}" "ATTESTATION_LOG_LEVEL=$log_level" "USE_CC_ATTESTATION_AGENT=false" \
        "ATTESTATION_EAT_FORMAT=CBOR" "${extra_env[@]}" ;;
  esac
}
ready_line() {
  case $1 in
    log-forwarder) echo 'log-forwarder started on /run/cocos/log.sock' ;;
    attestation-service) echo 'attestation-service started on /run/cocos/attestation.sock' ;;
    computation-runner) echo 'computation-runner started on /run/cocos/runner.sock' ;;
    # Logged just before the agent dials; the dial either fails at once (and the agent exits) or
    # holds, so "still running a moment later" is the readiness test.
    agent) echo 'Detected confidential computing platform' ;;
  esac
}

declare -A pid=()
start() {
  local name=$1 env_list=()
  mapfile -d '' env_list < <(env_of "$name")
  {
    echo "----- $(date -u +%FT%TZ) $me: starting $bin_dir/$name in $work_dir"
  } >>"$log_dir/$name.log"
  (cd "$work_dir" && exec setsid env -i "${env_list[@]}" "$bin_dir/$name") >>"$log_dir/$name.log" 2>&1 &
  pid[$name]=$!
  say "started $name (pid ${pid[$name]}), log $log_dir/$name.log"
}

# Waits until the process has logged its ready line (after this start); fails when it exits first.
await_ready() {
  local name=$1 p=${pid[$1]} line deadline=$((SECONDS + ready_timeout)) from
  line="$(ready_line "$name")"
  from=$(grep -n -- "----- .* $me: starting" "$log_dir/$name.log" | tail -n1 | cut -d: -f1)
  while ((SECONDS < deadline)); do
    if tail -n +"$from" "$log_dir/$name.log" | grep -q -F -- "$line"; then
      if [[ $name == agent ]]; then
        sleep 1.5
        kill -0 "$p" 2>/dev/null || return 1
      fi
      return 0
    fi
    kill -0 "$p" 2>/dev/null || return 1
    sleep 0.1
  done
  say "$name did not report ready within $ready_timeout s"
  return 1
}

stopping=0
stop_all() { stop_all_ 2>/dev/null; }
stop_all_() {
  stopping=1
  local name p alive deadline
  for name in agent computation-runner attestation-service log-forwarder; do
    p=${pid[$name]:-}
    [[ -n $p ]] && kill -0 "$p" 2>/dev/null || continue
    if ((stop_timeout > 0)); then kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null || true; fi
  done
  deadline=$((SECONDS + stop_timeout))
  while :; do
    alive=()
    for name in "${!pid[@]}"; do
      if kill -0 "${pid[$name]}" 2>/dev/null; then alive+=("$name"); fi
    done
    ((${#alive[@]})) || break
    if ((SECONDS >= deadline)); then
      ((stop_timeout == 0)) || say "SIGKILL to ${alive[*]}: still running ${stop_timeout} s after SIGTERM (expected: see --stop-timeout)"
      for name in "${alive[@]}"; do
        kill -KILL -- "-${pid[$name]}" 2>/dev/null || kill -KILL "${pid[$name]}" 2>/dev/null || true
      done
      sleep 0.2
      deadline=$((SECONDS + 5))
      continue
    fi
    sleep 0.2
  done
  wait 2>/dev/null || true
  rm -f /run/cocos/log.sock /run/cocos/attestation.sock /run/cocos/runner.sock /run/cocos/agent.sock
}
on_signal() {
  trap '' TERM INT
  say "received $1, stopping the agent stack"
  stop_all
  echo "$me: stopped"
  exit 0
}
trap 'on_signal SIGTERM' TERM
trap 'on_signal SIGINT' INT
# Also on an unexpected exit of this script, but only once it has started something: before that,
# the sockets may belong to another stack.
trap 'if ((!stopping && ${#pid[@]})); then stop_all; fi' EXIT

tail_log() { say "last lines of $log_dir/$1.log:"; tail -n "${2:-15}" "$log_dir/$1.log" | grep -v '^{"agentLog"' >&3 || true; }

say "NoCC agent stack (insecure, no hardware protection): control plane $url, cvm id '${cvm_id}', $(
  if [[ -n $client_cert ]]; then echo mTLS; elif [[ -n $server_ca ]]; then echo TLS; else echo h2c; fi
), work dir $work_dir"
for name in "${programs[@]}"; do
  start "$name"
  if ! await_ready "$name"; then
    say "$name failed to start"
    tail_log "$name"
    stop_all
    exit 1
  fi
done
pids=""
for name in "${programs[@]}"; do pids+="${pids:+,}$name:${pid[$name]}"; done
echo "$me: ready work_dir=$work_dir log_dir=$log_dir pids=$pids"

while :; do
  exited="" rc=0
  wait -n -p exited "${pid[@]}" || rc=$?
  [[ -n $exited ]] || continue # interrupted without a child exiting
  for name in "${programs[@]}"; do
    [[ ${pid[$name]} == "$exited" ]] || continue
    say "$name (pid $exited) exited with status $rc"
    tail_log "$name"
    if ((restart)); then
      sleep 5
      start "$name"
      await_ready "$name" || say "$name did not come back; will retry when it exits"
    else
      stop_all
      exit 1
    fi
  done
done
