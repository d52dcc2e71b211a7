#!/bin/sh
# The image's entrypoint: runs the model-based-round-robin plugin server outside Kong, then Kong's own entrypoint.
#
# Kong is given no start command for the server (no KONG_PLUGINSERVER_MODEL_BASED_ROUND_ROBIN_START_CMD, nothing
# at /usr/local/bin/model-based-round-robin), so it only connects to the socket ("assuming external process
# management"). Managed by Kong, the server's process handle sits in kong.configuration, which Kong 3.9.1-3.9.3's
# Admin API GET / cannot serialise (a 500 for apk-conf-to-kong, decK and Kong Manager), and every `kong reload`
# starts a fresh server. This script starts it before Kong and restarts it whenever it exits; it lives as long as
# the container and is untouched by `kong reload`.
#
# Restart policy: every request Kong sends while the server is down fails, so after a crash the server is
# restarted at once. Only when it crashes again soon (it ran less than RESTART_STABLE_AFTER seconds, default 10)
# does the wait grow: 1 s, 2 s, 4 s, then RESTART_BACKOFF_MAX (default 5 s) for each further quick crash, so a
# server that cannot start does not spin. Once a run lasts RESTART_STABLE_AFTER seconds, the next crash is
# restarted at once again. Times are whole seconds (`date +%s`).
#
# The socket sits in a subdirectory of Kong's prefix: Kong's docker-entrypoint.sh removes every socket directly
# in the prefix (and in sockets/) before it starts nginx.
set -u
cmd="${MODEL_BASED_ROUND_ROBIN_PLUGINSERVER_CMD:?the plugin server command is not set}"
entrypoint="${MODEL_BASED_ROUND_ROBIN_KONG_ENTRYPOINT:-/docker-entrypoint.sh}"
stable_after="${MODEL_BASED_ROUND_ROBIN_RESTART_STABLE_AFTER:-10}"
backoff_max="${MODEL_BASED_ROUND_ROBIN_RESTART_BACKOFF_MAX:-5}"
log() { echo "[model-based-round-robin-supervisor] $*" >&2; }

case "$stable_after$backoff_max" in
  *[!0-9]*)
    log "MODEL_BASED_ROUND_ROBIN_RESTART_STABLE_AFTER and _BACKOFF_MAX must be whole seconds"
    exit 2
    ;;
esac

if [ "${1:-}" = "kong" ] && [ "${2:-}" = "docker-start" ]; then
  (
    delay=0
    while :; do
      started=$(date +%s)
      # shellcheck disable=SC2086 # the command's words, as Kong would split a start_cmd
      $cmd &
      pid=$!
      log "started the plugin server, pid $pid"
      wait "$pid"
      status=$?
      lived=$(($(date +%s) - started))
      if [ "$lived" -ge "$stable_after" ]; then
        delay=0 # it had run for a while: this crash is not a repeat
      fi
      if [ "$delay" -eq 0 ]; then
        log "the plugin server (pid $pid) exited with $status after ${lived} s; restarting now"
      else
        log "the plugin server (pid $pid) exited with $status after ${lived} s, again within ${stable_after} s; restarting in ${delay} s"
        sleep "$delay"
      fi
      # The wait before the next restart, should this run end within stable_after too.
      if [ "$delay" -eq 0 ]; then delay=1; else delay=$((delay * 2)); fi
      if [ "$delay" -gt "$backoff_max" ]; then delay=$backoff_max; fi
    done
  ) &
fi

exec "$entrypoint" "$@"
