#!/usr/bin/env bash
# Builds the real Cocos v0.10.2 programs (agent, attestation-service, computation-runner,
# log-forwarder, manager, cli) from the wrapper module beside this script, for Prism's conformance
# tests against them. Pure Go, CGO_ENABLED=0, no TEE hardware needed to build or to run in NoCC mode.
#
#   infra/cocos/build.sh [--with-sample-server]
#
# Output: the binaries in ${PRISM_COCOS_BIN:-$HOME/.cache/prism/cocos/v0.10.2/bin}; the last line on
# stdout is that directory (everything else goes to stderr), so callers can do
#   bin=$(infra/cocos/build.sh | tail -n1)
# --with-sample-server also builds upstream's sample control plane test/cvms as cvms-sample-server
# (h2c on :7001; it sends a run request on every stream, so it is only good for smoke checks).
#
# Cache: modules in $PRISM_COCOS_CACHE/gomod, build cache in $PRISM_COCOS_CACHE/gocache
# (PRISM_COCOS_CACHE defaults to $HOME/.cache/prism/cocos). A stamp file beside the binaries records
# a hash of build.sh, go.mod, go.sum, tools.go, third_party/ and the Go version; when it matches and
# every binary exists, nothing is built. Concurrent runs are serialised with flock.
#
# Exit codes: 0 ok; 3 Go missing or too old; anything else: the build failed.
# Environment: PRISM_COCOS_BIN, PRISM_COCOS_CACHE, PRISM_COCOS_BUILD_JOBS (go build -p, default 1:
# the machines have 2 shared cores), GOPROXY (inherited; checksums are always verified).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cocos_version=v0.10.2
cocos_commit=412472943d82ba0fc81e31aae830a0e1c845b6aa # tag v0.10.2, as the Go module proxy reports it
cocos_tag_time=2026-07-14_10:51:01                     # fixed, so that builds are reproducible
programs=(agent attestation-service computation-runner log-forwarder manager cli)

with_sample=0
for arg in "$@"; do
  case $arg in
    --with-sample-server) with_sample=1 ;;
    -h | --help) sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build.sh: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

cache_root="${PRISM_COCOS_CACHE:-$HOME/.cache/prism/cocos}"
bin_dir="${PRISM_COCOS_BIN:-$cache_root/$cocos_version/bin}"

if ! command -v go >/dev/null 2>&1; then
  {
    echo "************************************************************************************"
    echo "Go is not installed: the conformance tests against the real Cocos programs cannot run"
    echo "(infra/cocos/build.sh needs the go command, version 1.26 or newer, on PATH)"
    echo "************************************************************************************"
  } >&2
  exit 3
fi
go_version="$(go env GOVERSION)" # e.g. go1.26.8
if [[ ! $go_version =~ ^go1\.([0-9]+) ]] || ((BASH_REMATCH[1] < 26)); then
  echo "build.sh: $go_version is too old: Cocos $cocos_version needs Go 1.26 or newer" >&2
  echo "Go is not usable: the conformance tests against the real Cocos programs cannot run" >&2
  exit 3
fi

wanted=("${programs[@]}")
((with_sample)) && wanted+=(cvms-sample-server)

# What the binaries depend on: the module files, the vendored go-tdx-guest, the Go version and this
# script (its build flags).
stamp_of_inputs() {
  (
    cd "$here"
    echo "cocos $cocos_version $cocos_commit $go_version $(go env GOOS)/$(go env GOARCH)"
    sha256sum build.sh go.mod go.sum tools.go
    find third_party -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
  ) | sha256sum | cut -d' ' -f1
}
stamp_file="$bin_dir/.prism-cocos-build-stamp"

up_to_date() {
  local p
  for p in "${wanted[@]}"; do [[ -x $bin_dir/$p ]] || return 1; done
  [[ -f $stamp_file && "$(cat "$stamp_file")" == "$(stamp_of_inputs)" ]]
}

if up_to_date; then
  echo "Cocos $cocos_version binaries are up to date in $bin_dir" >&2
  echo "$bin_dir"
  exit 0
fi

mkdir -p "$cache_root" "$bin_dir"
exec 9>"$cache_root/.build.lock"
flock 9
if up_to_date; then # another run built them while we waited for the lock
  echo "$bin_dir"
  exit 0
fi

export GOMODCACHE="$cache_root/gomod"
export GOCACHE="$cache_root/gocache"
export GOFLAGS="-mod=readonly -buildvcs=false -trimpath" # never rewrite go.mod/go.sum, never skip checks
export GOTOOLCHAIN=local # no toolchain download
export GOWORK=off
export CGO_ENABLED=0
export GONOSUMDB="" GONOSUMCHECK="" GOINSECURE="" # verification stays on for every module

ldflags="-s -w -X github.com/absmach/magistrala.Version=$cocos_version"
ldflags+=" -X github.com/absmach/magistrala.Commit=$cocos_commit"
ldflags+=" -X github.com/absmach/magistrala.BuildTime=$cocos_tag_time"
jobs="${PRISM_COCOS_BUILD_JOBS:-1}"

echo "Building Cocos $cocos_version (${wanted[*]}) with $go_version into $bin_dir" >&2
start=$SECONDS
rm -f "$stamp_file"
((with_sample)) || rm -f "$bin_dir/cvms-sample-server" # it would be stale after this build
tmp_out="$(mktemp -d "$bin_dir/.build.XXXXXX")"
trap 'rm -rf "$tmp_out"' EXIT
(
  cd "$here"
  pkgs=()
  for p in "${programs[@]}"; do pkgs+=("github.com/ultravioletrs/cocos/cmd/$p"); done
  go build -p "$jobs" -ldflags "$ldflags" -o "$tmp_out/" "${pkgs[@]}"
  if ((with_sample)); then
    go build -p "$jobs" -ldflags "$ldflags" -o "$tmp_out/cvms-sample-server" github.com/ultravioletrs/cocos/test/cvms
  fi
) || { echo "build.sh: building Cocos $cocos_version failed" >&2; exit 1; }
for p in "${wanted[@]}"; do mv -f "$tmp_out/$p" "$bin_dir/$p"; done
stamp_of_inputs >"$stamp_file"
echo "Built Cocos $cocos_version in $((SECONDS - start)) s" >&2
echo "$bin_dir"
