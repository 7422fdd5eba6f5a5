#!/bin/bash
# e2e scenario 7: a root hook. Records who ran it, in order, in a log the user hooks append to.
set -eu
touch /tmp/e2e-hooks.log
chmod 666 /tmp/e2e-hooks.log
echo "root-10-first $(id -un)" >>/tmp/e2e-hooks.log
