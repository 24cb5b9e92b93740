# Helpers shared by .ci/run and the service scripts in .ci/services/.
CI_PIDS=()

CI_T0=$SECONDS
ci_log() { printf '\n==> [%4ss] %s\n' "$((SECONDS - CI_T0))" "$*" >&2; }

# ci_track PID: remember a process we started so ci_stop_all ends it (and only it).
ci_track() { CI_PIDS+=("$1"); }

ci_stop_all() {
  local rc=$?
  for pid in "${CI_PIDS[@]:-}"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
  for pid in "${CI_PIDS[@]:-}"; do
    [ -n "$pid" ] && wait "$pid" 2>/dev/null || true
  done
  declare -F ci_extra_cleanup >/dev/null && ci_extra_cleanup || true
  return $rc
}

# ci_free_port: a free TCP port on 127.0.0.1.
ci_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# ci_wait_http URL SECONDS: poll until URL answers 2xx.
ci_wait_http() {
  local url=$1 secs=$2 i
  for ((i = 0; i < secs * 10; i++)); do
    if python3 - "$url" <<'PY' 2>/dev/null; then return 0; fi
import sys, urllib.request
urllib.request.urlopen(sys.argv[1], timeout=1)
PY
    sleep 0.1
  done
  echo "timed out waiting for $url" >&2
  return 1
}

ci_apt_updated=""
ci_apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ -z "$ci_apt_updated" ]; then apt-get update -qq; ci_apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}
