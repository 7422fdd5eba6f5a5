#!/bin/bash
# e2e scenario 7: the second root hook; fails when E2E_HOOK_FAIL=root.
set -eu
echo "root-20-second $(id -un)" >>/tmp/e2e-hooks.log
if [ "${E2E_HOOK_FAIL:-}" = root ]; then
  echo "failing on purpose (E2E_HOOK_FAIL=root)" >&2
  exit 7
fi
