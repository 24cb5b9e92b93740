# Real sshd hosts for the vps_file store and systemd-over-SSH tests: Debian's
# openssh-server, one sshd per port on 127.0.0.1 (VSYNC_SSHD_COUNT, default 5).
#
# Each sshd runs in its own mount namespace where $CI_STATE_DIR/sshd/remote is a bind
# mount of $CI_STATE_DIR/sshd/host-N, so every "host" sees a different file tree at the
# same remote path (like separate machines), while the tests can still stat the real
# files on this machine under host-N.
#
# Login: the unprivileged user vsync-ci with a throwaway ed25519 key; it may run
# `sudo -n /bin/sh` (the rule the vps_file store documents). Strict host-key checking:
# a known_hosts file with one `[127.0.0.1]:PORT key` line per sshd.
#
# Exports:
#   VSYNC_TEST_SSH_PORTS        comma-separated ports, one per host
#   VSYNC_TEST_SSH_USER         vsync-ci
#   VSYNC_TEST_SSH_KEY          private key file for that user
#   VSYNC_TEST_SSH_KNOWN_HOSTS  known_hosts for all the ports
#   VSYNC_TEST_SSH_REMOTE_ROOT  the directory as seen over SSH (same on every host)
#   VSYNC_TEST_SSH_HOST_ROOTS   comma-separated: where each host's REMOTE_ROOT really is
CI_SSH_USER=vsync-ci

ci_start_sshd() {
  ci_apt_install openssh-server openssh-sftp-server openssh-client sudo util-linux
  local dir="$CI_STATE_DIR/sshd" count="${VSYNC_SSHD_COUNT:-5}"
  mkdir -p "$dir" "$dir/remote"
  chmod 0755 "$dir" "$dir/remote"
  mkdir -p /run/sshd
  chmod 0755 /run/sshd

  # The test user: unlocked (sshd refuses locked accounts with UsePAM no), key only.
  if ! id "$CI_SSH_USER" >/dev/null 2>&1; then
    useradd --create-home --shell /bin/sh "$CI_SSH_USER"
  fi
  usermod -p '*' "$CI_SSH_USER"
  local home
  home=$(getent passwd "$CI_SSH_USER" | cut -d: -f6)
  [ -f "$dir/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C vsync-ci -f "$dir/id_ed25519"
  [ -f "$dir/ssh_host_ed25519_key" ] || ssh-keygen -q -t ed25519 -N '' -C vsync-ci-host -f "$dir/ssh_host_ed25519_key"
  install -d -m 0700 -o "$CI_SSH_USER" -g "$CI_SSH_USER" "$home/.ssh"
  # Append, never replace: another run on this machine (a developer's services, a
  # second checkout) may be using the same account with its own key.
  touch "$home/.ssh/authorized_keys"
  grep -qxF "$(cat "$dir/id_ed25519.pub")" "$home/.ssh/authorized_keys" ||
    cat "$dir/id_ed25519.pub" >>"$home/.ssh/authorized_keys"
  chown "$CI_SSH_USER:$CI_SSH_USER" "$home/.ssh/authorized_keys"
  chmod 0600 "$home/.ssh/authorized_keys"
  printf '%s ALL=(root) NOPASSWD: /bin/sh, /usr/bin/sh\n' "$CI_SSH_USER" >/etc/sudoers.d/vsync-ci
  chmod 0440 /etc/sudoers.d/vsync-ci

  local ports=() roots=() i port cfg hostkey
  hostkey=$(cut -d' ' -f1-2 "$dir/ssh_host_ed25519_key.pub")
  : >"$dir/known_hosts"
  for ((i = 1; i <= count; i++)); do
    port=$(ci_free_port)
    mkdir -p "$dir/host-$i"
    chmod 0755 "$dir/host-$i"
    cfg="$dir/sshd-$i.conf"
    cat >"$cfg" <<CONF
Port $port
ListenAddress 127.0.0.1
HostKey $dir/ssh_host_ed25519_key
PidFile $dir/sshd-$i.pid
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AuthorizedKeysFile .ssh/authorized_keys
PermitRootLogin no
AllowUsers $CI_SSH_USER
MaxSessions 64
MaxStartups 64:30:128
Subsystem sftp internal-sftp
CONF
    printf '[127.0.0.1]:%s %s\n' "$port" "$hostkey" >>"$dir/known_hosts"
    # unshare execs sh, which execs sshd: $! is the sshd itself.
    unshare --mount --propagation private sh -c \
      'mount --bind "$1" "$2" && exec /usr/sbin/sshd -D -e -f "$3"' sh \
      "$dir/host-$i" "$dir/remote" "$cfg" >"$dir/sshd-$i.log" 2>&1 </dev/null &
    ci_track $!
    ports+=("$port")
    roots+=("$dir/host-$i")
  done

  for port in "${ports[@]}"; do
    local ok=""
    for ((i = 0; i < 100; i++)); do
      if ssh -q -i "$dir/id_ed25519" -p "$port" -o BatchMode=yes -o StrictHostKeyChecking=yes \
        -o UserKnownHostsFile="$dir/known_hosts" -o IdentitiesOnly=yes -o ConnectTimeout=2 \
        "$CI_SSH_USER@127.0.0.1" 'sudo -n /bin/sh -c true' </dev/null >/dev/null 2>&1; then
        ok=1
        break
      fi
      sleep 0.1
    done
    if [ -z "$ok" ]; then
      cat "$dir"/sshd-*.log >&2
      echo "sshd on 127.0.0.1:$port did not answer" >&2
      return 1
    fi
  done

  export VSYNC_TEST_SSH_PORTS
  VSYNC_TEST_SSH_PORTS=$(IFS=,; echo "${ports[*]}")
  export VSYNC_TEST_SSH_HOST_ROOTS
  VSYNC_TEST_SSH_HOST_ROOTS=$(IFS=,; echo "${roots[*]}")
  export VSYNC_TEST_SSH_USER="$CI_SSH_USER"
  export VSYNC_TEST_SSH_KEY="$dir/id_ed25519"
  export VSYNC_TEST_SSH_KNOWN_HOSTS="$dir/known_hosts"
  export VSYNC_TEST_SSH_REMOTE_ROOT="$dir/remote"
}
