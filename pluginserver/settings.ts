/**
 * The one place that names the plugin server's settings: each one's command-line flag and environment
 * variable. A flag wins over the variable.
 *
 * Why flags at all: a plugin server that Kong starts itself (`pluginserver_<name>_start_cmd`) gets only `PWD`
 * in its environment (Kong 3.9.1, seen), so whatever Kong's own environment holds never reaches it; a managed
 * `start_cmd`, like a systemd unit, can always set flags.
 *
 * The plugin's settings reach the plugin as environment variables, which it reads itself when it is loaded
 * (status listener, state file, operator token, relay address): the server writes each flag given into its
 * own environment before it loads the plugin. Its own settings (the PDK call bound, the listen backlog) it
 * keeps.
 */

/** Overrides the default of --pdk-call-timeout-ms. */
export const CALL_TIMEOUT_ENV = "PLUGINSERVER_PDK_CALL_TIMEOUT_MS";

/** The plugin reads this one in persistence.ts (same name; a test checks). */
export const STATE_FILE_ENV = "MODEL_BASED_ROUND_ROBIN_STATE_FILE";
/** The plugin reads this one in status/address.ts (same name; a test checks). */
export const STATUS_LISTEN_ENV = "MODEL_BASED_ROUND_ROBIN_STATUS_LISTEN";
export const OPERATOR_TOKEN_ENV = "MODEL_BASED_ROUND_ROBIN_OPERATOR_TOKEN";
export const RELAY_LISTEN_ENV = "MODEL_BASED_ROUND_ROBIN_RELAY_LISTEN";

export interface PluginSetting {
  /** The long flag, without its dashes. */
  flag: string;
  /** The variable the plugin reads. */
  env: string;
  /** The flag's value in --help. */
  value: string;
  /** --help's lines about it. */
  help: string[];
  /** Whether --help and errors may show the value. */
  secret: boolean;
}

/** The plugin's settings, passed through to it. */
export const PLUGIN_SETTINGS: readonly PluginSetting[] = [
  {
    flag: "status-listen",
    env: STATUS_LISTEN_ENV,
    value: "<host:port>",
    help: ["serve GET /status and /metrics there (off when unset or empty)"],
    secret: false,
  },
  {
    flag: "state-file",
    env: STATE_FILE_ENV,
    value: "<path>",
    help: [
      "where suspensions and rotation positions survive restarts",
      "(default <kong-prefix>/<sock-name without .sock>.state.json; empty: none)",
    ],
    secret: false,
  },
  {
    flag: "operator-token",
    env: OPERATOR_TOKEN_ENV,
    value: "<token>",
    help: [
      "the token of the operator endpoints (never logged; visible in `ps`:",
      "prefer --operator-token-file)",
    ],
    secret: true,
  },
  {
    flag: "relay-listen",
    env: RELAY_LISTEN_ENV,
    value: "<host:port>",
    help: ["the relay's address (default 127.0.0.1:0: loopback, any free port)"],
    secret: false,
  },
];

/** Reads the operator token from a file (its last line break dropped), so it is not in the command line. */
export const OPERATOR_TOKEN_FILE_FLAG = "operator-token-file";
