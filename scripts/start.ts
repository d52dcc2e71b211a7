#!/usr/bin/env node
/**
 * `npm start`: a long-lived local gateway on docker-compose.yml's ports, so that the README's curls work without
 * Docker. The built plugin runs in the project's plugin server behind the project's Kong TEST DOUBLE (not Kong),
 * configured as compose configures Kong (kong/kong.yml, its endpoints chat-backend-1/2 pointed at two local mock
 * providers). Ctrl-C (SIGINT) or SIGTERM closes everything and exits 0.
 *
 *   node dist/scripts/start.js [--host 127.0.0.1] [--proxy-port 8000] [--admin-port 8001]
 *     [--backend-1-port 9001] [--backend-2-port 9002] [--status-listen 127.0.0.1:9542 | --status-listen ""]
 *
 * Port 0 takes any free port (the URLs printed are the real ones).
 */
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { KongDouble, type LogLine } from "../kong-double";
import {
  BACKENDS,
  type Backend,
  COMPOSE_PORTS,
  LOCAL_STATUS_LISTEN,
  localKongConfig,
} from "./lib/local-gateway";
import { type MockProvider, startMockProvider } from "./mock-provider";

const root = resolve(__dirname, "../..");
const PLUGIN = "model-based-round-robin";
const STATUS_LISTEN_ENV = "MODEL_BASED_ROUND_ROBIN_STATUS_LISTEN";

interface Options {
  host: string;
  ports: { proxy: number; admin: number } & Record<Backend, number>;
  statusListen: string;
}

function readOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      host: { type: "string", default: "127.0.0.1" },
      "proxy-port": { type: "string", default: String(COMPOSE_PORTS.proxy) },
      "admin-port": { type: "string", default: String(COMPOSE_PORTS.admin) },
      "backend-1-port": { type: "string", default: String(COMPOSE_PORTS["chat-backend-1"]) },
      "backend-2-port": { type: "string", default: String(COMPOSE_PORTS["chat-backend-2"]) },
      "status-listen": { type: "string", default: LOCAL_STATUS_LISTEN },
    },
  });
  const port = (flag: keyof typeof values): number => {
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

async function main(): Promise<void> {
  const options = readOptions(process.argv.slice(2));
  const providers: MockProvider[] = [];
  let kong: KongDouble | undefined;
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
    pluginServers: [
      // Run outside Kong, as the image runs it (a Kong-managed server would see no environment).
      {
        name: PLUGIN,
        pluginsDirectory: resolve(root, "dist/plugins"),
        supervised: true,
        ...(env !== undefined && { env }),
      },
    ],
    config: localKongConfig(root, urls),
    listen: {
      proxy: { host: options.host, port: options.ports.proxy },
      admin: { host: options.host, port: options.ports.admin },
    },
    onLog: showLog,
    keepLogs: 1000,
  });

  say(`  proxy           ${kong.proxyUrl}   (Kong's proxy port)`);
  say(`  Admin API       ${kong.adminUrl}   (DB-less: GET /services, GET /plugins, POST /config, ...)`);
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
