#!/usr/bin/env bash
# Installs what `make monitoring` and tests/kafka/test_monitoring.py need,
# idempotently: Debian's prometheus (prometheus, promtool) and
# prometheus-alertmanager (prometheus-alertmanager, amtool).
#
# The packages' maintainer scripts would start both daemons on their default
# ports (9090, 9093) and enable them at boot. Our tests start their own
# instances on their own ports and storage dirs, so the install runs under a
# policy-rc.d that forbids starting services, and a service the package
# enabled under systemd is disabled again. An operator's Prometheus installed
# before this script ran is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=../deploy/local/lib.sh
source deploy/local/lib.sh # log, die, SHOPFLOW_CACHE

need=()
command -v promtool >/dev/null && command -v prometheus >/dev/null || need+=(prometheus)
command -v prometheus-alertmanager >/dev/null && command -v amtool >/dev/null || need+=(prometheus-alertmanager)

if (( ${#need[@]} )); then
  (( EUID == 0 )) || die "need Debian packages ${need[*]} and not root" \
    "run as root, or: sudo apt-get install -y --no-install-recommends ${need[*]}"
  policy=/usr/sbin/policy-rc.d
  ours=
  if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\n# written by shopflow scripts/monitoring-setup.sh during an install\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    ours=1
  fi
  trap '[[ -n "$ours" ]] && rm -f "$policy"' EXIT
  export DEBIAN_FRONTEND=noninteractive
  log "apt: installing ${need[*]} (services not started)"
  apt-get update -q >/dev/null || die "apt-get update failed" "check the Debian mirror is reachable"
  apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null \
    || die "apt-get install ${need[*]} failed" "run it by hand to see why: apt-get install --no-install-recommends ${need[*]}"
  if [[ -d /run/systemd/system ]]; then
    for unit in prometheus prometheus-alertmanager; do
      systemctl disable --now "$unit" >/dev/null 2>&1 || true
    done
  fi
fi

for tool in prometheus promtool prometheus-alertmanager amtool; do
  command -v "$tool" >/dev/null || die "$tool not found after installing Debian's prometheus packages" \
    "check: dpkg -L prometheus prometheus-alertmanager | grep bin/"
done
log "monitoring-setup: ok ($(prometheus --version 2>&1 | head -1); $(prometheus-alertmanager --version 2>&1 | head -1))"
