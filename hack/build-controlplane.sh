#!/usr/bin/env bash
# Builds a real Kubernetes control plane and node (etcd, kube-apiserver,
# kube-controller-manager, kubectl, kubelet, kube-scheduler, kube-proxy,
# containerd and its runc shim) from the Go module proxy, once per machine.
#
#   hack/build-controlplane.sh
#
# Output: bin/k8s/<KUBE_VERSION>/ (override with CONTROLPLANE_DIR). That
# directory is usable as controller-runtime envtest's KUBEBUILDER_ASSETS; its
# path is the only line printed on stdout (progress goes to stderr), so
#   export KUBEBUILDER_ASSETS=$(hack/build-controlplane.sh)
# works. A binary is rebuilt only when it is missing or
# was built for another version (recorded in <dir>/.versions), so a second run
# is a no-op. Cold builds take ~10 minutes on 2 cores; see
# hack/controlplane/README.md.
#
# Environment:
#   CONTROLPLANE_DIR  output directory (default: <repo>/bin/k8s/<KUBE_VERSION>)
#   KUBE_VERSION      k8s.io/kubernetes release (default: pinned, v1.37.2)
#   ETCD_VERSION      go.etcd.io/etcd/server/v3 release (default: pinned, v3.6.16)
#   ONLY              space-separated subset of the binaries to check and build
# Overriding a version regenerates the wrapper module in a temporary directory
# (needs the module proxy); the pinned versions build from the committed
# go.mod/go.sum in hack/controlplane/{kube,etcd,containerd}. containerd is
# built only at its pinned version (hack/controlplane/containerd/go.mod).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
src="${root}/hack/controlplane"
# shellcheck source=controlplane/versions.env
source "${src}/versions.env"

KUBE_VERSION=${KUBE_VERSION:-${PINNED_KUBE_VERSION}}
ETCD_VERSION=${ETCD_VERSION:-${PINNED_ETCD_VERSION}}
out=${CONTROLPLANE_DIR:-${root}/bin/k8s/${KUBE_VERSION}}
stamp="${out}/.versions"
# shellcheck disable=SC2206
binaries=(etcd ${KUBE_BINARIES} ${CONTAINERD_BINARIES})
# shellcheck disable=SC2206
[[ -z ${ONLY:-} ]] || binaries=(${ONLY})

version_of() { # binary -> version it must be built at
  case $1 in
    etcd) echo "${ETCD_VERSION}" ;;
    containerd*) echo "${PINNED_CONTAINERD_VERSION}" ;;
    *) echo "${KUBE_VERSION}" ;;
  esac
}

stamped_version() { # binary -> version recorded in the stamp, or nothing
  [[ -f "${stamp}" ]] || return 0
  awk -v b="$1" '$1 == b { print $2 }' "${stamp}"
}

write_stamp() { # binary version
  local tmp="${stamp}.tmp.$$"
  { [[ -f "${stamp}" ]] && awk -v b="$1" '$1 != b' "${stamp}"; echo "$1 $2"; } >"${tmp}"
  mv -f "${tmp}" "${stamp}"
}

todo=()
for b in "${binaries[@]}"; do
  if [[ ! -x "${out}/${b}" || "$(stamped_version "${b}")" != "$(version_of "${b}")" ]]; then
    todo+=("${b}")
  fi
done

if ((${#todo[@]} == 0)); then
  echo "control plane up to date (kubernetes ${KUBE_VERSION}, etcd ${ETCD_VERSION}), nothing to build" >&2
  echo "${out}"
  exit 0
fi

command -v go >/dev/null || { echo "build-controlplane: go not found in PATH" >&2; exit 1; }
mkdir -p "${out}"

# Reproducible, host-only, static builds from exactly the committed modules.
unset GOOS GOARCH GOARM GOAMD64 GOEXPERIMENT
export CGO_ENABLED=0 GOWORK=off GOTOOLCHAIN=local GOFLAGS=-mod=readonly

tmpdirs=()
cleanup() {
  rm -f "${out}"/.*.tmp.$$ "${stamp}.tmp.$$" 2>/dev/null || true
  ((${#tmpdirs[@]} == 0)) || rm -rf "${tmpdirs[@]}"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Module directories; a copy is regenerated when a version is overridden.
kube_mod="${src}/kube"
etcd_mod="${src}/etcd"
containerd_mod="${src}/containerd"
need_kube=0 need_etcd=0
for b in "${todo[@]}"; do
  case ${b} in
    etcd) need_etcd=1 ;;
    containerd*) ;;
    *) need_kube=1 ;;
  esac
done
if ((need_kube)) && [[ ${KUBE_VERSION} != "${PINNED_KUBE_VERSION}" ]]; then
  kube_mod=$(mktemp -d); tmpdirs+=("${kube_mod}")
  echo "==> resolving wrapper module for kubernetes ${KUBE_VERSION} (pinned: ${PINNED_KUBE_VERSION})" >&2
  cp "${src}/kube/go.mod" "${src}/kube/go.sum" "${kube_mod}/"
  "${src}/gen-kube-mod.sh" "${kube_mod}" "${KUBE_VERSION}" >&2
fi
if ((need_etcd)) && [[ ${ETCD_VERSION} != "${PINNED_ETCD_VERSION}" ]]; then
  etcd_mod=$(mktemp -d); tmpdirs+=("${etcd_mod}")
  echo "==> resolving wrapper module for etcd ${ETCD_VERSION} (pinned: ${PINNED_ETCD_VERSION})" >&2
  cp "${src}/etcd/go.mod" "${src}/etcd/go.sum" "${etcd_mod}/"
  # Move every go.etcd.io/etcd/* module together: go.etcd.io/etcd/api/v3
  # carries the version that `etcd --version` and the cluster report.
  (
    cd "${etcd_mod}"
    mods=$(go mod edit -json | sed -n 's/.*"Path": "\(go\.etcd\.io\/etcd\/[^"]*\)".*/\1/p' | sort -u)
    # shellcheck disable=SC2086
    GOFLAGS=-mod=mod go get $(printf "%s@${ETCD_VERSION} " ${mods})
    GOFLAGS=-mod=mod go mod tidy
  ) >&2
fi

kube_ldflags() {
  # Same variables as upstream's hack/lib/version.sh. buildDate is the
  # release's commit time from the module proxy, so builds are reproducible.
  local date major minor rest
  date=$(cd "${kube_mod}" && go mod download -json "k8s.io/kubernetes@${KUBE_VERSION}" |
    sed -n 's/^[[:space:]]*"Info": "\(.*\)",$/\1/p' | xargs cat | sed -n 's/.*"Time":"\([^"]*\)".*/\1/p')
  [[ -n "${date}" ]] || date=1970-01-01T00:00:00Z
  rest=${KUBE_VERSION#v}; major=${rest%%.*}; rest=${rest#*.}; minor=${rest%%.*}
  local flags="-s -w" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X ${pkg}.gitVersion=${KUBE_VERSION} -X ${pkg}.gitMajor=${major} -X ${pkg}.gitMinor=${minor}"
    flags+=" -X ${pkg}.gitCommit= -X ${pkg}.gitTreeState=clean -X ${pkg}.buildDate=${date}"
  done
  echo "${flags}"
}

build() { # name module-dir package ldflags estimate
  local name=$1 moddir=$2 pkg=$3 ldflags=$4 estimate=$5 version start tmp smoke=(--version)
  [[ ${name} != kubectl ]] || smoke=(version --client)
  [[ ${name} != containerd-shim-runc-v2 ]] || smoke=(-v)
  version=$(version_of "${name}")
  tmp="${out}/.${name}.tmp.$$"
  echo "==> building ${name} ${version} (takes ${estimate} cold)" >&2
  start=${SECONDS}
  go build -C "${moddir}" -trimpath -buildvcs=false -ldflags "${ldflags}" -o "${tmp}" "${pkg}"
  "${tmp}" "${smoke[@]}" >/dev/null 2>&1 || { echo "build-controlplane: ${name} built but does not run" >&2; exit 1; }
  mv -f "${tmp}" "${out}/${name}"
  write_stamp "${name}" "${version}"
  echo "    ${name} done in $((SECONDS - start))s" >&2
}

total_start=${SECONDS}
kflags=""
for b in "${todo[@]}"; do
  case ${b} in
    etcd)
      build etcd "${etcd_mod}" go.etcd.io/etcd/server/v3 \
        "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=${ETCD_VERSION}" "~1 min" ;;
    kube-apiserver | kube-controller-manager | kubectl)
      [[ -n "${kflags}" ]] || kflags=$(kube_ldflags)
      case ${b} in
        kube-apiserver) est="~7 min" ;;
        kube-controller-manager) est="~2 min after kube-apiserver, ~8 min alone" ;;
        *) est="~1 min after kube-apiserver, ~3 min alone" ;;
      esac
      build "${b}" "${kube_mod}" "k8s.io/kubernetes/cmd/${b}" "${kflags}" "${est}" ;;
    kubelet | kube-scheduler | kube-proxy)
      [[ -n "${kflags}" ]] || kflags=$(kube_ldflags)
      build "${b}" "${kube_mod}" "k8s.io/kubernetes/cmd/${b}" "${kflags}" "~2 min after kube-apiserver, ~6 min alone" ;;
    containerd | containerd-shim-runc-v2)
      # Static, without cgo: containerd's btrfs snapshotter needs cgo and is left out
      # (the sandbox uses overlayfs); seccomp is runc's job, and runc comes from Debian.
      build "${b}" "${containerd_mod}" "github.com/containerd/containerd/v2/cmd/${b}" \
        "-s -w -X github.com/containerd/containerd/v2/version.Version=${PINNED_CONTAINERD_VERSION} -X github.com/containerd/containerd/v2/version.Revision=" "~4 min alone" ;;
    *) echo "build-controlplane: unknown binary ${b}" >&2; exit 2 ;;
  esac
done

echo "==> control plane built in $((SECONDS - total_start))s: kubernetes ${KUBE_VERSION}, etcd ${ETCD_VERSION}" >&2
echo "    use it with envtest: export KUBEBUILDER_ASSETS=${out}" >&2
echo "${out}"
