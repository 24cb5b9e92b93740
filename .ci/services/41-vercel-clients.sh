# Vercel's own clients, to check the Vercel fake with (adapters/vercel/tests/clients.rs):
# `@vercel/sdk` validates every answer against the schemas of Vercel's OpenAPI
# document, and the `vercel` CLI makes the requests the adapters copy (redeploy,
# promote, rollback status, env). Pinned: CLI 61 and newer do not install here.
# Installed once into the cache (about 20 s), reused while the versions stay.
VERCEL_SDK_VERSION=1.28.35
VERCEL_CLI_VERSION=58.10.0

ci_start_vercel_clients() {
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    ci_apt_install nodejs npm
  fi
  local dir="${CI_CACHE_DIR:-$CI_STATE_DIR}/vercel-clients-$VERCEL_SDK_VERSION-$VERCEL_CLI_VERSION"
  if [ ! -x "$dir/node_modules/vercel/dist/vc.js" ] || [ ! -f "$dir/node_modules/@vercel/sdk/package.json" ]; then
    mkdir -p "$dir"
    # Its own package.json, so npm installs here and not in a parent project.
    [ -f "$dir/package.json" ] || echo '{"private": true}' >"$dir/package.json"
    (cd "$dir" && npm install --no-audit --no-fund --loglevel=error -E \
      "@vercel/sdk@$VERCEL_SDK_VERSION" "vercel@$VERCEL_CLI_VERSION" >&2)
  fi
  VERCEL_TELEMETRY_DISABLED=1 node "$dir/node_modules/vercel/dist/vc.js" --version >/dev/null 2>&1
  export VSYNC_TEST_VERCEL_CLI="$dir/node_modules/vercel/dist/vc.js"
  export VSYNC_TEST_VERCEL_SDK_DIR="$dir"
}
