/**
 * kong-js-pluginserver's command line (kong-pdk cli.js, commander), parsed with node:util: the same flags,
 * including the single-dash long spellings commander accepts there (`-plugins-directory`, `-dump-all-plugins`).
 */
import { resolve } from "node:path";
import { parseArgs } from "node:util";
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
}

/** Overrides the default of --pdk-call-timeout-ms (tests shorten it). */
export const CALL_TIMEOUT_ENV = "PLUGINSERVER_PDK_CALL_TIMEOUT_MS";

const USAGE = `Usage: model-based-round-robin-pluginserver -d <dir> [options]

  -d, --plugins-directory <dir>  plugins directory for .js files (required)
  -p, --kong-prefix <prefix>     directory of the unix socket (default /usr/local/kong)
      --sock-name <name>         socket name to listen on (default js_pluginserver.sock)
  -v, --verbose                  debug logging (every RPC with its arguments)
      --dump-all-plugins         print every plugin's info as JSON on stdout and exit
      --dump-plugin-info <name>  print one plugin's info as msgpack on stdout and exit
      --pdk-call-timeout-ms <ms> abandon a PDK call Kong has not answered after this long
                                 (default ${DEFAULT_CALL_TIMEOUT_MS}; env ${CALL_TIMEOUT_ENV})
      --version                  print kong-pdk's version
  -h, --help                     this text
`;

const SINGLE_DASH_LONG = /^-(kong-prefix|plugins-directory|dump-plugin-info|dump-all-plugins)(=.*)?$/;

export type CliResult =
  | { kind: "run"; options: CliOptions }
  | { kind: "exit"; code: number; message: string };

export function parseCli(argv: string[], env: NodeJS.ProcessEnv): CliResult {
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
    },
  };
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
      version: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
}
