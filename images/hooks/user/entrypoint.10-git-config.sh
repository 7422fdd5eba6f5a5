#!/bin/sh
# Example user hook: runs as `user` in /home/user at boot, after pre-warm and registration,
# before run.sh starts (files /home/user/entrypoint.*.sh, lexical order).
# Here: a git identity and a shared npm cache inside the (pre-warmed) work directory.
set -eu
git config --global user.name "${GIT_AUTHOR_NAME:-ci-runner}"
git config --global user.email "${GIT_AUTHOR_EMAIL:-ci-runner@localhost}"
git config --global --add safe.directory '*'
if command -v npm >/dev/null 2>&1; then
    npm config set cache "$HOME/_work/.npm"
fi
