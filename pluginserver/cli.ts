/**
 * kong-js-pluginserver's command line (kong-pdk cli.js, commander), parsed with node:util: the same flags,
 * including the single-dash long spellings commander accepts there (`-plugins-directory`, `-dump-all-plugins`);
 * plus the server's own settings and the plugin's (./settings), each a flag that wins over its variable.
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { DEFAULT_BACKLOG } from "./listener";
import {
  CALL_TIMEOUT_ENV,
  OPERATOR_TOKEN_ENV,
  OPERATOR_TOKEN_FILE_FLAG,
  PLUGIN_SETTINGS,
  type PluginSetting,
  STATE_FILE_ENV,
} from "./settings";
import { DEFAULT_CALL_TIMEOUT_MS } from "./timeouts";

export interface CliOptions {
  pluginsDirectory: string;
  kongPrefix: string;
  sockName: string;
  verbose: number;
  dumpAllPlugins: boolean;
  dumpPluginInfo: string | undefined;
  /** How long a PDK call may wait for Kong's answer before it is abandoned. */
  callTimeoutMs: number;
  /** The plugin-server socket's listen backlog (the kernel caps it at net.core.somaxconn). */
  backlog: number;
  /**
   * The plugin's settings given as flags, by variable name: the server sets them in its environment before it
   * loads the plugin, over whatever was there. Holds the operator token: never print it.
   */
  pluginEnv: Record<string, string>;
}

export { CALL_TIMEOUT_ENV };

const pluginFlagLines = PLUGIN_SETTINGS.flatMap((s) => {
  const left = `      --${s.flag} ${s.value}`;
  const [first, ...rest] = [...s.help, `(env ${s.env})`];
  const indent = "".padEnd(33);
  // A flag too long for the column gets its text on the lines below it.
  const head = left.length < 33 ? [`${left.padEnd(33)}${first}`] : [left, `${indent}${first}`];
  return [...head, ...rest.map((line) => `${indent}${line}`)];
}).join("\n");

const USAGE = `Usage: model-based-round-robin-pluginserver -d <dir> [options]

  -d, --plugins-directory <dir>  plugins directory for .js files (required)
  -p, --kong-prefix <prefix>     directory of the unix socket (default /usr/local/kong)
      --sock-name <name>         socket name to listen on (default js_pluginserver.sock)
  -v, --verbose                  debug logging (every RPC with its arguments)
      --dump-all-plugins         print every plugin's info as JSON on stdout and exit
      --dump-plugin-info <name>  print one plugin's info as msgpack on stdout and exit
      --pdk-call-timeout-ms <ms> abandon a PDK call Kong has not answered after this long
                                 (default ${DEFAULT_CALL_TIMEOUT_MS}; env ${CALL_TIMEOUT_ENV})
      --listen-backlog <n>       the socket's accept queue (default ${DEFAULT_BACKLOG}; the kernel's
                                 net.core.somaxconn caps it)

The plugin's settings (a flag wins over its variable; a server Kong starts gets no environment):
${pluginFlagLines}
      --${OPERATOR_TOKEN_FILE_FLAG} <path>
                                 read the operator token from this file instead

      --version                  print kong-pdk's version
  -h, --help                     this text
`;

const SINGLE_DASH_LONG = /^-(kong-prefix|plugins-directory|dump-plugin-info|dump-all-plugins)(=.*)?$/;

export type CliResult =
  | { kind: "run"; options: CliOptions }
  | { kind: "exit"; code: number; message: string };

export function parseCli(
  argv: string[],
  env: NodeJS.ProcessEnv,
  readText: (path: string) => string = (path) => readFileSync(path, "utf8"),
): CliResult {
  let values: ReturnType<typeof parse>["values"];
  try {
    values = parse(argv.map((a) => (SINGLE_DASH_LONG.test(a) ? `-${a}` : a))).values;
  } catch (error) {
    return { kind: "exit", code: 1, message: `error: ${(error as Error).message}\n${USAGE}` };
  }
  if (values.help) return { kind: "exit", code: 0, message: USAGE };
  if (values.version) {
    const { version } = require("kong-pdk/package.json") as { version: string };
    return { kind: "exit", code: 0, message: `${version}\n` };
  }
  if (values["plugins-directory"] === undefined) {
    return {
      kind: "exit",
      code: 1,
      message: "error: required option '-d, --plugins-directory <dir>' not specified\n",
    };
  }
  const timeoutText = values["pdk-call-timeout-ms"] ?? env[CALL_TIMEOUT_ENV];
  const callTimeoutMs = timeoutText === undefined ? DEFAULT_CALL_TIMEOUT_MS : Number(timeoutText);
  if (!Number.isInteger(callTimeoutMs) || callTimeoutMs <= 0) {
    return { kind: "exit", code: 1, message: `error: invalid PDK call timeout '${timeoutText}' (ms)\n` };
  }
  const backlogText = values["listen-backlog"];
  const backlog = backlogText === undefined ? DEFAULT_BACKLOG : Number(backlogText);
  if (
    !/^\d+$/.test(backlogText ?? "1") ||
    !Number.isSafeInteger(backlog) ||
    backlog < 1 ||
    backlog > 2 ** 31 - 1
  ) {
    return {
      kind: "exit",
      code: 1,
      message: `error: invalid --listen-backlog '${backlogText}': a whole number from 1 to ${2 ** 31 - 1}\n`,
    };
  }
  const pluginEnv = pluginSettings(values, readText);
  if (typeof pluginEnv === "string") return { kind: "exit", code: 1, message: `error: ${pluginEnv}\n` };
  return {
    kind: "run",
    options: {
      // kong-pdk require()s each file under this path: a relative one would be looked up as a module name.
      pluginsDirectory: resolve(values["plugins-directory"]),
      kongPrefix: values["kong-prefix"] ?? "/usr/local/kong",
      sockName: values["sock-name"] ?? "js_pluginserver.sock",
      verbose: values.verbose?.length ?? 0,
      dumpAllPlugins: values["dump-all-plugins"] ?? false,
      dumpPluginInfo: values["dump-plugin-info"],
      callTimeoutMs,
      backlog,
      pluginEnv,
    },
  };
}

type Values = ReturnType<typeof parse>["values"];

/** The plugin's settings given as flags, checked; or a sentence saying what is wrong (never the token). */
function pluginSettings(values: Values, readText: (path: string) => string): Record<string, string> | string {
  const given = (s: PluginSetting) => (values as Record<string, unknown>)[s.flag] as string | undefined;
  const out: Record<string, string> = {};
  for (const setting of PLUGIN_SETTINGS) {
    const value = given(setting);
    if (value !== undefined) out[setting.env] = value;
  }
  // The listen addresses go to the plugin as they are: it parses them and says what is wrong (the image
  // ships this server's directory apart from the plugin's, so it cannot import the plugin's parser).
  const stateFile = out[STATE_FILE_ENV];
  // The plugin opens it later, from whatever directory: fix a relative path to where it was given.
  if (stateFile !== undefined && stateFile !== "") out[STATE_FILE_ENV] = resolve(stateFile);
  const tokenFile = values[OPERATOR_TOKEN_FILE_FLAG];
  if (tokenFile !== undefined) {
    if (out[OPERATOR_TOKEN_ENV] !== undefined) {
      return `--operator-token and --${OPERATOR_TOKEN_FILE_FLAG} both given: pick one`;
    }
    try {
      out[OPERATOR_TOKEN_ENV] = readText(tokenFile).replace(/\r?\n$/, "");
    } catch (error) {
      return `cannot read --${OPERATOR_TOKEN_FILE_FLAG} '${tokenFile}': ${(error as NodeJS.ErrnoException).code ?? "unreadable"}`;
    }
  }
  const token = out[OPERATOR_TOKEN_ENV];
  if (token !== undefined && token.trim() === "") {
    return tokenFile === undefined
      ? "--operator-token is empty"
      : `--${OPERATOR_TOKEN_FILE_FLAG} '${tokenFile}' holds no token`;
  }
  return out;
}

function parse(args: string[]) {
  return parseArgs({
    args,
    strict: true,
    allowPositionals: false,
    options: {
      "plugins-directory": { type: "string", short: "d" },
      "kong-prefix": { type: "string", short: "p" },
      "sock-name": { type: "string" },
      verbose: { type: "boolean", short: "v", multiple: true },
      "dump-all-plugins": { type: "boolean" },
      "dump-plugin-info": { type: "string" },
      "pdk-call-timeout-ms": { type: "string" },
      "listen-backlog": { type: "string" },
      ...Object.fromEntries(PLUGIN_SETTINGS.map((s) => [s.flag, { type: "string" as const }])),
      [OPERATOR_TOKEN_FILE_FLAG]: { type: "string" },
      version: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
}
