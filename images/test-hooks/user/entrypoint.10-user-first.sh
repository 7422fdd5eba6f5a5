#!/bin/bash
# e2e scenario 7: a user hook (runs as `user`, after registration, before run.sh).
set -eu
echo "user-10-first $(id -un) $HOME" >>/tmp/e2e-hooks.log
