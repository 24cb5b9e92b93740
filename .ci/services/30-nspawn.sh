# A real systemd for the systemd restarter tests: a Debian root (debootstrap minbase with
# systemd, dbus and openssh-server) booted with systemd-nspawn. The container shares the
# host's loopback, so its own sshd listens on a free 127.0.0.1 port. The root is cached
# under $CI_CACHE_DIR/nspawn-root between runs (rebuilt when NSPAWN_ROOT_VERSION changes).
#
# Inside: demo@.service (a shell loop reading /etc/vsync/passphrase; demo@a, demo@b and
# demo@c start at boot) and demo-bad@.service (ExecStart=/bin/false, Restart=on-failure).
#
# Exports VSYNC_TEST_NSPAWN_SSH_PORT, VSYNC_TEST_NSPAWN_SSH_USER (root),
# VSYNC_TEST_NSPAWN_SSH_KEY, VSYNC_TEST_NSPAWN_KNOWN_HOSTS.
NSPAWN_ROOT_VERSION=1

# The mirror apt already uses on this machine (never written into the repository).
ci_nspawn_mirror() {
  local m=""
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    m=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
  fi
  if [ -z "$m" ]; then
    m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
      awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }')
  fi
  if [ -z "$m" ]; then
    m=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ {print $2; exit}')
  fi
  [ -n "$m" ] || { echo "no Debian mirror found in apt sources" >&2; return 1; }
  printf '%s\n' "$m"
}

ci_nspawn_build_root() {
  local root=$1 mirror suite
  mirror=$(ci_nspawn_mirror)
  suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
  rm -rf "$root"
  ci_log "debootstrap $suite (minbase + systemd, dbus, openssh-server)"
  debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,openssh-server \
    "$suite" "$root" "$mirror" >"$CI_STATE_DIR/nspawn/debootstrap.log" 2>&1 ||
    { tail -20 "$CI_STATE_DIR/nspawn/debootstrap.log" >&2; return 1; }

  # The units the restarter tests drive.
  mkdir -p "$root/etc/vsync" "$root/etc/systemd/system/multi-user.target.wants"
  printf 'initial-nspawn-passphrase' >"$root/etc/vsync/passphrase"
  chmod 0600 "$root/etc/vsync/passphrase"
  cat >"$root/etc/systemd/system/demo@.service" <<'UNIT'
[Unit]
Description=vsync-orchestrate test app %i

[Service]
Type=simple
ExecStart=/bin/sh -c 'cat /etc/vsync/passphrase >/dev/null; exec sleep infinity'
Restart=on-failure
RestartSec=1

[Install]
WantedBy=multi-user.target
UNIT
  cat >"$root/etc/systemd/system/demo-bad@.service" <<'UNIT'
[Unit]
Description=vsync-orchestrate test app that cannot start %i

[Service]
Type=simple
ExecStart=/bin/sh -c 'echo "demo-bad %i: cannot read the vault" >&2; exit 1'
Restart=on-failure
RestartSec=1
UNIT
  local i
  for i in a b c; do
    ln -sf ../demo@.service "$root/etc/systemd/system/multi-user.target.wants/demo@$i.service"
  done
  # Quieter, faster boot: nothing here needs these.
  for u in systemd-networkd.service systemd-resolved.service systemd-timesyncd.service \
    apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer; do
    ln -sf /dev/null "$root/etc/systemd/system/$u"
  done
  echo "$NSPAWN_ROOT_VERSION" >"$root/.vsync-ci-root"
}

ci_start_nspawn() {
  ci_apt_install debootstrap systemd-container openssh-client
  local dir="$CI_STATE_DIR/nspawn"
  local root="${CI_CACHE_DIR:-$dir}/nspawn-root"
  mkdir -p "$dir"
  if [ "$(cat "$root/.vsync-ci-root" 2>/dev/null)" != "$NSPAWN_ROOT_VERSION" ]; then
    ci_nspawn_build_root "$root"
  fi

  # Client key and the container's sshd on a fresh port.
  [ -f "$dir/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C vsync-ci-nspawn -f "$dir/id_ed25519"
  mkdir -p "$root/root/.ssh"
  chmod 0700 "$root/root/.ssh"
  cp "$dir/id_ed25519.pub" "$root/root/.ssh/authorized_keys"
  chmod 0600 "$root/root/.ssh/authorized_keys"
  [ -f "$root/etc/ssh/ssh_host_ed25519_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$root/etc/ssh/ssh_host_ed25519_key"
  local port
  port=$(ci_free_port)
  mkdir -p "$root/etc/ssh/sshd_config.d"
  cat >"$root/etc/ssh/sshd_config.d/vsync-ci.conf" <<CONF
Port $port
ListenAddress 127.0.0.1
HostKey /etc/ssh/ssh_host_ed25519_key
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowUsers root
CONF
  printf '[127.0.0.1]:%s %s\n' "$port" "$(cut -d' ' -f1-2 "$root/etc/ssh/ssh_host_ed25519_key.pub")" >"$dir/known_hosts"

  systemd-nspawn -D "$root" --boot --register=no --keep-unit --console=passive \
    --machine="vsync-ci-$$" >"$dir/console.log" 2>&1 </dev/null &
  local pid=$!
  ci_track "$pid"

  local i ok=""
  for ((i = 0; i < 600; i++)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -30 "$dir/console.log" >&2
      echo "systemd-nspawn exited during boot" >&2
      return 1
    fi
    if ssh -q -i "$dir/id_ed25519" -p "$port" -o BatchMode=yes -o StrictHostKeyChecking=yes \
      -o UserKnownHostsFile="$dir/known_hosts" -o ConnectTimeout=2 root@127.0.0.1 \
      'systemctl is-system-running --wait >/dev/null 2>&1; systemctl is-active demo@a.service demo@b.service demo@c.service' \
      >/dev/null 2>&1; then
      ok=1
      break
    fi
    sleep 0.2
  done
  if [ -z "$ok" ]; then
    tail -30 "$dir/console.log" >&2
    echo "the nspawn container's sshd did not answer on 127.0.0.1:$port" >&2
    return 1
  fi
  export VSYNC_TEST_NSPAWN_SSH_PORT=$port
  export VSYNC_TEST_NSPAWN_SSH_USER=root
  export VSYNC_TEST_NSPAWN_SSH_KEY="$dir/id_ed25519"
  export VSYNC_TEST_NSPAWN_KNOWN_HOSTS="$dir/known_hosts"
}
