#!/bin/sh
# Healthy when sshd on port 22 accepts a TCP connection and completes a key exchange.
set -eu
keys=$(ssh-keyscan -T 5 -p 22 127.0.0.1 2>/dev/null || true)
[ -n "$keys" ] || { echo "sshd does not answer on 127.0.0.1:22" >&2; exit 1; }
