#!/usr/bin/env node
/**
 * `npm start`: a long-lived local gateway on docker-compose.yml's ports, so that the README's curls work without
 * Docker. The built plugin runs in the project's plugin server behind the project's Kong TEST DOUBLE (not Kong),
 * configured as compose configures Kong (kong/kong.yml, its endpoints chat-backend-1/2 pointed at two local mock
 * providers). As in the image, the plugin server runs unmanaged: this script starts it and restarts it when it
 * exits (lib/supervise.ts, the image's supervisor), and the double only connects to its socket, so Admin `GET /`
 * answers 200 as on the image (a server Kong manages makes Kong 3.9.1-3.9.3 answer 500 there). Ctrl-C (SIGINT)
 * or SIGTERM closes everything and exits 0. `--help` prints the flags (through npm: `npm start -- --help`).
 */
import { resolve } from "node:path";
import { type ParseArgsConfig, parseArgs } from "node:util";
import { KongDouble, type LogLine } from "../kong-double";
import { socketPath } from "../kong-double/pluginserver-settings";
import {
  BACKENDS,
  type Backend,
  COMPOSE_PORTS,
  LOCAL_STATUS_LISTEN,
  localKongConfig,
} from "./lib/local-gateway";
import { type Supervised, supervise } from "./lib/supervise";
import { type MockProvider, startMockProvider } from "./mock-provider";

const root = resolve(__dirname, "../..");
const PLUGIN = "model-based-round-robin";
const STATUS_LISTEN_ENV = "MODEL_BASED_ROUND_ROBIN_STATUS_LISTEN";

const USAGE = `npm start -- [flags]   (or: node dist/scripts/start.js [flags])

A local gateway on docker-compose.yml's ports: the plugin in its plugin server behind the project's Kong TEST
DOUBLE (not Kong), configured with kong/kong.yml and two mock providers, until Ctrl-C.

  --host HOST               address everything listens on (default 127.0.0.1)
  --proxy-port PORT         Kong's proxy (default ${COMPOSE_PORTS.proxy})
  --admin-port PORT         Kong's Admin API (default ${COMPOSE_PORTS.admin})
  --backend-1-port PORT     mock provider chat-backend-1 (default ${COMPOSE_PORTS["chat-backend-1"]})
  --backend-2-port PORT     mock provider chat-backend-2 (default ${COMPOSE_PORTS["chat-backend-2"]})
  --status-listen HOST:PORT the plugin server's /status and /metrics (default ${LOCAL_STATUS_LISTEN}; "" for none)
  -h, --help                this text

Port 0 takes any free port (the URLs printed are the real ones).
`;

interface Options {
  host: string;
  ports: { proxy: number; admin: number } & Record<Backend, number>;
  statusListen: string;
}

function readOptions(argv: string[]): Options | "help" {
  const { values } = parseArgsOrUsage({
    args: argv,
    options: {
      help: { type: "boolean", short: "h", default: false },
      host: { type: "string", default: "127.0.0.1" },
      "proxy-port": { type: "string", default: String(COMPOSE_PORTS.proxy) },
      "admin-port": { type: "string", default: String(COMPOSE_PORTS.admin) },
      "backend-1-port": { type: "string", default: String(COMPOSE_PORTS["chat-backend-1"]) },
      "backend-2-port": { type: "string", default: String(COMPOSE_PORTS["chat-backend-2"]) },
      "status-listen": { type: "string", default: LOCAL_STATUS_LISTEN },
    },
  });
  if (values.help === true) return "help";
  const port = (flag: "proxy-port" | "admin-port" | "backend-1-port" | "backend-2-port"): number => {
    const text = String(values[flag]);
    const n = Number(text);
    if (!/^\d+$/.test(text) || n > 65535)
      throw new UsageError(`--${flag} must be a port, 0-65535 (got ${text})`);
    return n;
  };
  return {
    host: String(values.host),
    ports: {
      proxy: port("proxy-port"),
      admin: port("admin-port"),
      "chat-backend-1": port("backend-1-port"),
      "chat-backend-2": port("backend-2-port"),
    },
    statusListen: String(values["status-listen"]),
  };
}

class UsageError extends Error {}

/** parseArgs, its errors (an unknown flag, a missing value) as usage errors that point at --help. */
function parseArgsOrUsage<T extends ParseArgsConfig>(config: T): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (error) {
    throw new UsageError(`${(error as Error).message} (npm start -- --help lists the flags)`);
  }
}

async function main(): Promise<void> {
  const options = readOptions(process.argv.slice(2));
  if (options === "help") {
    process.stdout.write(USAGE);
    return;
  }
  const providers: MockProvider[] = [];
  let kong: KongDouble | undefined;
  let server: Supervised | undefined;
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) {
      say(`${signal} again: exiting at once`);
      process.exit(1);
    }
    stopping = true;
    say(`\n${signal}: stopping the double, the plugin server and the mock providers...`);
    const deadline = setTimeout(() => {
      say("did not stop within 10 s; exiting anyway");
      process.exit(1);
    }, 10_000);
    // As a host shuts down: the plugin server first (it writes its last state), then Kong; the double removes
    // its temporary directory (the socket, the state file) when it stops.
    await server?.stop();
    await kong?.stop();
    await Promise.all(providers.map((p) => p.close()));
    clearTimeout(deadline);
    say("stopped");
    process.exit(0);
  };
  // A second Ctrl-C while stopping exits at once.
  process.on("SIGINT", () => void stop("SIGINT"));
  process.on("SIGTERM", () => void stop("SIGTERM"));

  say("model-based-round-robin, locally: the README's curls without Docker.");
  say(
    "This is the project's Kong TEST DOUBLE (kong-double), not Kong: the real plugin in the project's plugin",
  );
  say(
    "server, behind a double of Kong's side of the plugin protocol. For real Kong: docker compose up --build.\n",
  );

  const urls = {} as Record<Backend, string>;
  for (const backend of BACKENDS) {
    const provider = await startMockProvider({
      name: backend,
      host: options.host,
      port: options.ports[backend],
    }).catch((error: NodeJS.ErrnoException) => {
      throw new Error(
        `${backend} could not listen on ${options.host}:${options.ports[backend]}: ${why(error)}`,
      );
    });
    providers.push(provider);
    urls[backend] = `http://${options.host === "0.0.0.0" ? "127.0.0.1" : options.host}:${provider.port}`;
  }
  const env = options.statusListen === "" ? undefined : { [STATUS_LISTEN_ENV]: options.statusListen };
  kong = await KongDouble.start({
    // external: the double runs the query command and connects to the socket; the server is this script's.
    pluginServers: [{ name: PLUGIN, pluginsDirectory: resolve(root, "dist/plugins"), external: true }],
    config: localKongConfig(root, urls),
    listen: {
      proxy: { host: options.host, port: options.ports.proxy },
      admin: { host: options.host, port: options.ports.admin },
    },
    onLog: showLog,
    keepLogs: 1000,
  });
  server = supervise(kong.server(PLUGIN).settings, {
    ...(env !== undefined && { env }),
    say: (line) => say(`log: [server] ${line}`),
  });
  await server.ready();

  say(`  proxy           ${kong.proxyUrl}   (Kong's proxy port)`);
  say(`  Admin API       ${kong.adminUrl}   (DB-less: GET /services, GET /plugins, POST /config, ...)`);
  say(
    `  plugin server   ${socketPath(kong.server(PLUGIN).settings)}   (unmanaged: run and restarted by this script, as the image's supervisor does)`,
  );
  for (const backend of BACKENDS) {
    say(
      `  ${backend}  ${urls[backend]}   (mock provider; POST /__mock/fail, /__mock/reset, GET /__mock/requests)`,
    );
  }
  if (env !== undefined) {
    say(
      `  status          http://${options.statusListen}/status and /metrics (the plugin server's listener, from the first request on)`,
    );
  }
  say(
    `configuration: kong/kong.yml, http://chat-backend-1:80 → ${urls["chat-backend-1"]}, http://chat-backend-2:80 → ${urls["chat-backend-2"]}`,
  );
  say("try:");
  say(
    `  curl -s ${kong.proxyUrl}/chat-service-prod-sand/1.0/chat/completions -H 'content-type: application/json' -d '{"model":"gpt-4.5","input":"Hello"}'`,
  );
  say("ready; Ctrl-C stops it.");
}

/** Kong's error log, in short: the plugin server's lines and the double's own warnings. */
function showLog(line: LogLine): void {
  if (line.source === "server" || ["warn", "err", "error", "crit", "notice"].includes(line.level)) {
    say(`log: [${line.source}] ${line.level}: ${line.message}`);
  }
}

function why(error: NodeJS.ErrnoException): string {
  return error.code === "EADDRINUSE" ? "the port is in use (EADDRINUSE)" : error.message;
}

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

main().catch((error: unknown) => {
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(
    `npm start failed: ${message}\n` +
      (error instanceof UsageError
        ? ""
        : "(another gateway on these ports? pass --proxy-port, --admin-port, --backend-1-port, --backend-2-port)\n"),
  );
  process.exit(error instanceof UsageError ? 2 : 1);
});
