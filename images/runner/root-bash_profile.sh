# Root's login profile in the runner image.
# `bash -l` as root (e.g. `docker exec -it <container> bash -l`) continues as `user` in
# /home/user, where the jobs run; plain `bash` stays a root shell.
# Set WARM_RUNNERS_ROOT_LOGIN=1 to get a root login shell instead.
if [ -z "${WARM_RUNNERS_ROOT_LOGIN:-}" ]; then
    if [ -n "${BASH_EXECUTION_STRING:-}" ]; then
        exec /usr/local/bin/runner exec-as user -- bash -l -c "$BASH_EXECUTION_STRING"
    fi
    exec /usr/local/bin/runner exec-as user -- bash -l
fi
[ -f /root/.profile ] && . /root/.profile
