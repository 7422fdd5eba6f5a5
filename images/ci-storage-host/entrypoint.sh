#!/bin/sh
# ci-storage host: sshd for the account "user", whose ~/ci-storage (a volume) holds the
# slots. ci-storage clients need only ssh + rsync + perl here. Runs as root.
#
# Authorized key: the file /run/secrets/CI_STORAGE_PUBLIC_KEY, else the env variable
# CI_STORAGE_PUBLIC_KEY (one or more authorized_keys lines). Host keys persist in
# /var/lib/ci-storage-host/ssh (mount a volume there to keep them across restarts, so
# clients can pin them with CI_STORAGE_HOST_KEY).
set -eu

USER_NAME=user
HOME_DIR=/home/$USER_NAME
STORAGE_DIR=$HOME_DIR/ci-storage
HOST_KEY_DIR=/var/lib/ci-storage-host/ssh
SECRET_FILE=/run/secrets/CI_STORAGE_PUBLIC_KEY

log() { printf '%s ci-storage-host: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"; }
die() { log "ERROR: $*" >&2; exit 2; }

# 1. The authorized key.
if [ -s "$SECRET_FILE" ]; then
  key=$(cat "$SECRET_FILE")
  key_source=$SECRET_FILE
elif [ -n "${CI_STORAGE_PUBLIC_KEY:-}" ]; then
  key=$CI_STORAGE_PUBLIC_KEY
  key_source="env CI_STORAGE_PUBLIC_KEY"
else
  die "no authorized key: mount the secret $SECRET_FILE or set CI_STORAGE_PUBLIC_KEY to the ssh public key of the ci-storage clients (e.g. \"ssh-ed25519 AAAA... ci\")"
fi
case $key in
  *"PRIVATE KEY"*) die "$key_source holds a PRIVATE key; give the PUBLIC key (ssh-keygen -y -f KEY)" ;;
esac
id "$USER_NAME" >/dev/null 2>&1 || die "the image has no user \"$USER_NAME\" (uid 1000, home $HOME_DIR)"
ssh_dir=$HOME_DIR/.ssh
mkdir -p "$ssh_dir"
tmp_keys=$ssh_dir/authorized_keys.tmp
printf '%s\n' "$key" | tr -d '\r' > "$tmp_keys"
if ! ssh-keygen -l -f "$tmp_keys" >/dev/null 2>&1; then
  rm -f "$tmp_keys"
  die "$key_source is not a valid ssh public key (authorized_keys format expected)"
fi
mv "$tmp_keys" "$ssh_dir/authorized_keys"
chmod 700 "$ssh_dir"
chmod 600 "$ssh_dir/authorized_keys"
chown -R "$USER_NAME:$USER_NAME" "$ssh_dir"
log "authorized key(s) from $key_source: $(ssh-keygen -l -f "$ssh_dir/authorized_keys" | awk '{print $2}' | tr '\n' ' ')"

# With UsePAM no, sshd refuses accounts whose password is locked ("!"); "*" means "no
# password login" without locking key logins.
if getent shadow "$USER_NAME" 2>/dev/null | cut -d: -f2 | grep -q '^!'; then
  usermod -p '*' "$USER_NAME"
fi

# 2. Host keys (generated once; persistent if $HOST_KEY_DIR is a volume).
mkdir -p "$HOST_KEY_DIR"
chmod 700 "$HOST_KEY_DIR"
host_key=$HOST_KEY_DIR/ssh_host_ed25519_key
if [ ! -s "$host_key" ]; then
  ssh-keygen -q -t ed25519 -N '' -C ci-storage-host -f "$host_key"
  log "generated host key $host_key"
fi
chmod 600 "$host_key"
log "host key (clients may pin it with CI_STORAGE_HOST_KEY): $(cat "$host_key.pub")"

# 3. The storage dir (the volume mount point) belongs to the user; not recursive, it may
# be huge.
mkdir -p "$STORAGE_DIR"
chown "$USER_NAME:$USER_NAME" "$STORAGE_DIR"
log "storage dir $STORAGE_DIR ($(df -h "$STORAGE_DIR" | awk 'NR==2 {print $4 " free of " $2}'))"

# 4. sshd.
mkdir -p /run/sshd
chmod 755 /run/sshd
/usr/sbin/sshd -t || die "sshd configuration is invalid (see above)"
log "starting sshd on port 22"
exec /usr/sbin/sshd -D -e
