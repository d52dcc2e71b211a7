/**
 * The one place that says how Kong starts and queries this plugin's plugin server. The Dockerfile's
 * environment and the Kong test double both derive their commands from here, so they cannot drift.
 *
 * Kong 3.9 registers only the first plugin a server reports, so each plugin gets its own server, its own
 * plugins directory (holding that plugin and nothing else) and its own socket. Kong connects to
 * `pluginserver_<name>_socket`; the JS server listens on `<kong-prefix>/<sock-name>`: the two must be equal.
 */
import { readFileSync } from "node:fs";
import { join, posix } from "node:path";

export interface PluginServerSettings {
  /** Plugin server name in `pluginserver_names`; equal to the plugin's Name. */
  name: string;
  /**
   * `--kong-prefix` of the JS server: the socket's directory (and the state file's). In the image a directory
   * inside Kong's prefix, not the prefix itself, whose sockets Kong's docker-entrypoint.sh deletes at start.
   */
  kongPrefix: string;
  /** `--sock-name` of the JS server. */
  sockName: string;
  /** Directory holding the built plugin and nothing else. */
  pluginsDirectory: string;
  /** Absolute path of the plugin server command (Kong runs the commands with a limited PATH). */
  serverBin: string;
}

/** The settings of the Kong image, as committed in kong/pluginserver.json. */
export function imageSettings(repoRoot: string): PluginServerSettings {
  return JSON.parse(
    readFileSync(join(repoRoot, "kong", "pluginserver.json"), "utf8"),
  ) as PluginServerSettings;
}

export function socketPath(s: PluginServerSettings): string {
  return posix.join(s.kongPrefix, s.sockName);
}

/** argv of the long-running server (Kong's `start_cmd`). */
export function startArgv(s: PluginServerSettings): string[] {
  return [
    s.serverBin,
    "--plugins-directory",
    s.pluginsDirectory,
    "--kong-prefix",
    s.kongPrefix,
    "--sock-name",
    s.sockName,
  ];
}

/** argv of the discovery command (Kong's `query_cmd`); its stdout must be pure JSON. */
export function queryArgv(s: PluginServerSettings): string[] {
  return [s.serverBin, "--plugins-directory", s.pluginsDirectory, "--dump-all-plugins"];
}

/**
 * Kong's environment variables for this server (`-` in the name becomes `_` in the key). No start command: the
 * image runs the server itself (kong/pluginserver-supervisor.sh), because a server Kong manages breaks Admin
 * `GET /` on Kong 3.9.1-3.9.3 and is replaced by every `kong reload`. Kong 3.9 still requires the query command.
 */
export function kongEnvironment(s: PluginServerSettings): Record<string, string> {
  const key = s.name.toUpperCase().replace(/-/g, "_");
  return {
    KONG_PLUGINSERVER_NAMES: s.name,
    [`KONG_PLUGINSERVER_${key}_SOCKET`]: socketPath(s),
    [`KONG_PLUGINSERVER_${key}_QUERY_CMD`]: queryArgv(s).join(" "),
    KONG_PLUGINS: `bundled,${s.name}`,
  };
}

/** The variable through which the image's supervisor gets the server's command (not KONG_*: Kong reads those). */
export const SUPERVISED_COMMAND_ENV = "MODEL_BASED_ROUND_ROBIN_PLUGINSERVER_CMD";

/** The image's environment: Kong's variables, and the command the supervisor runs and restarts. */
export function imageEnvironment(s: PluginServerSettings): Record<string, string> {
  return { ...kongEnvironment(s), [SUPERVISED_COMMAND_ENV]: startArgv(s).join(" ") };
}
