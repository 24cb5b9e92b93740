# Google's own clients, which check the GCP fakes (adapters/gcp/tests/vendor_clients.rs
# starts the same fakes the adapter tests use and drives them with these):
#
# * `gcloud` from the machine image (`secrets versions add/access`, `secrets update
#   --update-version-aliases`), exported as VSYNC_TEST_GCLOUD;
# * the Python clients google-cloud-secret-manager and google-cloud-run (REST
#   transport), in a virtual environment cached across runs (about 20 s to build),
#   exported as VSYNC_TEST_GCP_PYTHON.
GCP_PYTHON_CLIENTS="google-cloud-secret-manager==2.32.0 google-cloud-run==0.16.2"

ci_start_gcp_clients() {
  local gcloud
  gcloud=$(command -v gcloud || true)
  if [ -z "$gcloud" ]; then
    echo "gcloud is not on PATH (the machine image has it): the GCP fakes cannot be checked" >&2
    return 1
  fi
  "$gcloud" --version >/dev/null
  export VSYNC_TEST_GCLOUD="$gcloud"

  local venv="${CI_CACHE_DIR:-$CI_STATE_DIR}/gcp-clients-venv"
  # The stamp names what the venv was built with: a changed pin rebuilds it.
  if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.pins" 2>/dev/null)" != "$GCP_PYTHON_CLIENTS" ]; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    # shellcheck disable=SC2086 # one word per requirement
    "$venv/bin/pip" install -q $GCP_PYTHON_CLIENTS
    printf '%s' "$GCP_PYTHON_CLIENTS" >"$venv/.pins"
  fi
  "$venv/bin/python" -c 'from google.cloud import secretmanager, run_v2'
  export VSYNC_TEST_GCP_PYTHON="$venv/bin/python"
}
