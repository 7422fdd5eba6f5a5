#!/bin/sh
# Example root hook: runs as root at boot, before the runner registers (files
# /root/entrypoint.*.sh run in lexical order; a failing hook stops the boot).
# Here: point apt at a caching proxy when APT_PROXY is set on the container.
set -eu
if [ -n "${APT_PROXY:-}" ]; then
    echo "Acquire::http::Proxy \"$APT_PROXY\";" > /etc/apt/apt.conf.d/90proxy
    echo "apt proxy: $APT_PROXY"
fi
