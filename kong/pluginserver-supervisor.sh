#!/bin/sh
# The image's entrypoint: runs the model-based-round-robin plugin server outside Kong, then Kong's own entrypoint.
#
# Kong is given no start command for the server (no KONG_PLUGINSERVER_MODEL_BASED_ROUND_ROBIN_START_CMD, nothing
# at /usr/local/bin/model-based-round-robin), so it only connects to the socket ("assuming external process
# management"). Managed by Kong, the server's process handle sits in kong.configuration, which Kong 3.9.1-3.9.3's
# Admin API GET / cannot serialise (a 500 for apk-conf-to-kong, decK and Kong Manager), and every `kong reload`
# starts a fresh server. This script starts it before Kong and restarts it whenever it exits, at most once a
# second, as Kong's worker 0 would; it lives as long as the container and is untouched by `kong reload`.
#
# The socket sits in a subdirectory of Kong's prefix: Kong's docker-entrypoint.sh removes every socket directly
# in the prefix (and in sockets/) before it starts nginx.
set -u
cmd="${MODEL_BASED_ROUND_ROBIN_PLUGINSERVER_CMD:?the plugin server command is not set}"
entrypoint="${MODEL_BASED_ROUND_ROBIN_KONG_ENTRYPOINT:-/docker-entrypoint.sh}"

if [ "${1:-}" = "kong" ] && [ "${2:-}" = "docker-start" ]; then
  (
    while :; do
      # shellcheck disable=SC2086 # the command's words, as Kong would split a start_cmd
      $cmd &
      pid=$!
      echo "[model-based-round-robin-supervisor] started the plugin server, pid $pid" >&2
      wait "$pid"
      status=$?
      echo "[model-based-round-robin-supervisor] the plugin server (pid $pid) exited with $status; restarting in 1 s" >&2
      sleep 1
    done
  ) &
fi

exec "$entrypoint" "$@"
