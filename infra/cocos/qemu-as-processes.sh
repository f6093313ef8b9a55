#!/usr/bin/env bash
# Stand-in for qemu-system-x86_64 under the real Cocos v0.10.2 manager: instead of booting a VM it
# runs the NoCC agent stack as processes (agent-stack.sh). INSECURE, NO HARDWARE PROTECTION: tests only.
#
# Manager environment that makes it run this (no KVM, no sudo, no OVMF, no kernel needed):
#   MANAGER_QEMU_BIN_PATH=/abs/path/infra/cocos/qemu-as-processes.sh
#   MANAGER_QEMU_ENABLE_KVM=false  MANAGER_QEMU_USE_SUDO=false
#   MANAGER_QEMU_OVMF_VARS_FILE=<any existing file: the manager copies it to /tmp/OVMF_VARS-<uuid>.fd
#                                and never deletes the copy>
#   MANAGER_QEMU_DISK_IMG_KERNEL_FILE=x  MANAGER_QEMU_DISK_IMG_ROOTFS_FILE=x   (any non-empty string)
#
# From the QEMU arguments the manager builds it takes
#   -fsdev local,id=cert_fs,path=DIR,…   cert.pem, key.pem, ca.pem (the CreateVm request's bytes)
#   -fsdev local,id=env_fs,path=DIR,…    environment: AGENT_CVM_GRPC_URL, AGENT_CVM_ID (= cvm id),
#                                        AGENT_LOG_LEVEL, AGENT_CVM_GRPC_* = /etc/certs/*.pem
#   -netdev user,…,hostfwd=tcp::PORT-:7002
# and runs agent-stack.sh --env-file ENV/environment --certs-dir CERTS; the manager's forwarded port
# PORT is forwarded on 127.0.0.1 to the agent's ingress on port 7002 (python3 needed for that; without
# it the ingress is only on 7002). Every other argument is ignored. SIGTERM (the manager's RemoveVm)
# stops everything; the manager deletes both directories right after sending it and SIGKILLs after 30 s.
#
# Environment: PRISM_COCOS_VM_ROOT (default ${TMPDIR:-/tmp}): each "VM" gets a working directory
# prism-cocos-vm.<cvm id>.XXXXXX there, with the process logs in logs/. Extra options for
# agent-stack.sh can be given in PRISM_COCOS_AGENT_STACK_OPTS (word-split).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
say() { echo "qemu-as-processes: $*" >&2; }

certs_dir="" env_dir="" fwd_port=""
for arg in "$@"; do
  case $arg in
    local,id=cert_fs,*path=*) certs_dir=${arg#*path=}; certs_dir=${certs_dir%%,*} ;;
    local,id=env_fs,*path=*) env_dir=${arg#*path=}; env_dir=${env_dir%%,*} ;;
    user,*hostfwd=tcp::*-:7002*) fwd_port=${arg#*hostfwd=tcp::}; fwd_port=${fwd_port%%-*} ;;
  esac
done
[[ -n $env_dir && -f $env_dir/environment ]] || { say "no -fsdev …id=env_fs,path=DIR with DIR/environment in the arguments"; exit 2; }

cvm_id="$(sed -n 's/^AGENT_CVM_ID=//p' "$env_dir/environment" | tail -n1)"
work_dir="$(mktemp -d "${PRISM_COCOS_VM_ROOT:-${TMPDIR:-/tmp}}/prism-cocos-vm.${cvm_id:-noid}.XXXXXX")"
# The manager deletes both directories when it stops the VM: keep a copy of what was handed over.
mkdir -p "$work_dir/handover"
cp -p "$env_dir/environment" "$work_dir/handover/"
[[ -z $certs_dir ]] || cp -p "$certs_dir"/*.pem "$work_dir/handover/" 2>/dev/null || true

stack_args=(--env-file "$work_dir/handover/environment" --certs-dir "$work_dir/handover" --work-dir "$work_dir")
# shellcheck disable=SC2206 # deliberate word splitting
[[ -z ${PRISM_COCOS_AGENT_STACK_OPTS:-} ]] || stack_args+=(${PRISM_COCOS_AGENT_STACK_OPTS})

say "cvm $cvm_id: agent stack in $work_dir${fwd_port:+, 127.0.0.1:$fwd_port -> 127.0.0.1:7002}"
"$here/agent-stack.sh" "${stack_args[@]}" &
stack_pid=$!

fwd_pid=""
if [[ -n $fwd_port && $fwd_port != 7002 ]]; then
  if command -v python3 >/dev/null; then
    python3 - "$fwd_port" <<'EOF' &
import asyncio, sys

async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()

async def handle(client_reader, client_writer):
    try:
        agent_reader, agent_writer = await asyncio.open_connection("127.0.0.1", 7002)
    except OSError:
        client_writer.close()
        return
    await asyncio.gather(pipe(client_reader, agent_writer), pipe(agent_reader, client_writer))

async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]))
    async with server:
        await server.serve_forever()

asyncio.run(main())
EOF
    fwd_pid=$!
  else
    say "python3 is missing: port $fwd_port is not forwarded; the agent's ingress is on 7002 only"
  fi
fi

stop() {
  trap '' TERM INT
  [[ -z $fwd_pid ]] || kill "$fwd_pid" 2>/dev/null || true
  kill -TERM "$stack_pid" 2>/dev/null || true
  wait "$stack_pid" 2>/dev/null || true
  exit 0
}
trap stop TERM INT

rc=0
wait "$stack_pid" || rc=$?
[[ -z $fwd_pid ]] || kill "$fwd_pid" 2>/dev/null || true
say "agent stack exited with status $rc"
exit "$rc"
