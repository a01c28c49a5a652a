#!/usr/bin/env bash
# Installs what the dashboard browser test (tests/browser/) needs, idempotently:
#  - Debian's chromium at /usr/bin/chromium (apt-get, as root), the browser
#    playwright-core drives; playwright never downloads a browser of its own
#    here (`npx playwright install` cannot work on a machine without internet);
#  - playwright-core, exactly as pinned in tests/browser/package-lock.json
#    (`npm ci`), into tests/browser/node_modules, with npm's download cache
#    under ${SHOPFLOW_CACHE:-$HOME/.cache/shopflow}/npm.
# Then: SHOPFLOW_BIN=.../shopflow node tests/browser/dashboard.test.mjs
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=../deploy/local/lib.sh
source deploy/local/lib.sh # log, die, apt_install, SHOPFLOW_CACHE

if [[ ! -x /usr/bin/chromium ]]; then
  apt_install chromium
fi
/usr/bin/chromium --version >/dev/null 2>&1 \
  || die "/usr/bin/chromium is installed but does not run" "try: /usr/bin/chromium --headless --no-sandbox --version"

command -v npm >/dev/null || die "npm not found" "install Node.js 20 or newer with npm (playwright-core needs Node 20)"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
(( node_major >= 20 )) || die "Node.js $(node --version) is too old" "playwright-core needs Node.js 20 or newer"

# npm ci wipes node_modules, so run it only when the lock file changed.
dir=tests/browser
stamp="$dir/node_modules/.shopflow-lock.sha256"
want="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)"
if [[ ! -d "$dir/node_modules/playwright-core" || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  log "npm ci in $dir"
  (cd "$dir" && npm ci --cache "$SHOPFLOW_CACHE/npm" --no-audit --no-fund --loglevel=error)
  echo "$want" > "$stamp"
fi
log "browser-setup: ok ($(/usr/bin/chromium --version 2>/dev/null), playwright-core $(node -p "require('./$dir/node_modules/playwright-core/package.json').version"))"
