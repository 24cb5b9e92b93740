# moto in server mode: real S3 (conditional writes), Secrets Manager and ECS protocol
# on 127.0.0.1. Exports VSYNC_TEST_MOTO_ENDPOINT for the tests.
MOTO_VERSION=5.2.5

ci_start_moto() {
  local venv="${CI_CACHE_DIR:-$CI_STATE_DIR}/moto-venv"
  if [ ! -x "$venv/bin/moto_server" ] || ! "$venv/bin/pip" show moto 2>/dev/null | grep -q "^Version: $MOTO_VERSION\$"; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "moto[server]==$MOTO_VERSION"
  fi
  local port
  port=$(ci_free_port)
  "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$CI_STATE_DIR/moto.log" 2>&1 &
  ci_track $!
  ci_wait_http "http://127.0.0.1:$port/moto-api/" 30
  export VSYNC_TEST_MOTO_ENDPOINT="http://127.0.0.1:$port"
  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
  export AWS_EC2_METADATA_DISABLED=true
}
