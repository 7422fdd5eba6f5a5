#!/bin/bash
# e2e scenario 7: the second user hook; fails when E2E_HOOK_FAIL=user.
set -eu
echo "user-20-second $(id -un) $HOME" >>/tmp/e2e-hooks.log
if [ "${E2E_HOOK_FAIL:-}" = user ]; then
  echo "failing on purpose (E2E_HOOK_FAIL=user)" >&2
  exit 9
fi
