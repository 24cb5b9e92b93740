# Command-line tools the tests call: Debian's `age` (age, age-keygen) decrypts the
# escrow copies the way a security team would.
ci_start_tools() {
  ci_apt_install age
}
