#!/usr/bin/env node
/**
 * model-based-round-robin-pluginserver: the plugin server Kong starts (pluginserver_<name>_start_cmd) and
 * queries (..._query_cmd). kong-pdk 0.6.0's server, with events freed once Kong is done with them (./server);
 * the project's own listener on Kong's socket (./listener: a socket error ends only its connection, messages
 * decoded once as they stream in, a backlog sized for bursts); logging in plain text on stderr (./logger), so
 * stdout carries nothing but the query command's JSON.
 *
 * Flags are kong-js-pluginserver's (kong-pdk cli.js), plus the server's and the plugin's settings (./settings).
 * `kill -USR2 <pid>` logs one `status` line (events map size, instances, connections, heap) at info level:
 * Kong shows it at log_level=info.
 */
import { join } from "node:path";
import { encode } from "@msgpack/msgpack";

import { type CliOptions, parseCli } from "./cli";
import { KongListener } from "./listener";
import { PlainLogger } from "./logger";
import { EventReleasingServer } from "./server";
import { STATE_FILE_ENV, stateFileFor } from "./state-file";
import { KONG_SOCKET_TIMEOUT_MS } from "./timeouts";
import { registerTypeScriptPlugins } from "./typescript-plugins";

function logStatus(server: EventReleasingServer, listener: KongListener, logger: PlainLogger): void {
  // With --expose-gc the figures are taken after a full collection, so they compare between runs.
  (globalThis as { gc?: () => void }).gc?.();
  const { heapUsed, rss } = process.memoryUsage();
  logger.info(`status: ${JSON.stringify({ ...server.status(), ...listener.status(), heapUsed, rss })}`);
}

async function run(opts: CliOptions): Promise<void> {
  const serving = opts.dumpPluginInfo === undefined && !opts.dumpAllPlugins;
  if (serving) {
    // The plugin reads its settings from the environment when it is loaded (below): a flag wins.
    Object.assign(process.env, opts.pluginEnv);
    process.env[STATE_FILE_ENV] ??= stateFileFor(opts);
    // Kong stops its plugin server with SIGTERM (kong reload, kong stop): exit normally, so that the plugin's
    // exit handler writes its last state.
    process.once("SIGTERM", () => process.exit(0));
  }
  const logger = new PlainLogger(opts.verbose > 0 ? "debug" : "info");
  if (opts.callTimeoutMs < KONG_SOCKET_TIMEOUT_MS) {
    logger.warn(
      `PDK call timeout ${opts.callTimeoutMs} ms is shorter than Kong's ${KONG_SOCKET_TIMEOUT_MS} ms socket timeout: ` +
        "a call Kong is still running may be abandoned",
    );
  }
  registerTypeScriptPlugins(opts.pluginsDirectory);
  const server = new EventReleasingServer(opts.pluginsDirectory, logger, opts.callTimeoutMs);
  // As kong-js-pluginserver does: close() stops kong-pdk's instance expiry (an interval that would otherwise
  // keep a dump running and drop instances Kong still uses; Kong replaces instances itself).
  server.close();

  if (opts.dumpPluginInfo !== undefined) {
    process.stdout.write(encode(await server.GetPluginInfo(opts.dumpPluginInfo)));
    return;
  }
  if (opts.dumpAllPlugins) {
    const names = [...server.getPlugins().keys()];
    const infos = await Promise.all(names.map((name) => server.GetPluginInfo(name)));
    process.stdout.write(`${JSON.stringify(infos)}\n`);
    return;
  }
  const listener = new KongListener(server, logger, {
    socketPath: join(opts.kongPrefix, opts.sockName),
    backlog: opts.backlog,
    verbose: opts.verbose > 0,
  });
  await listener.listen();
  process.on("SIGUSR2", () => logStatus(server, listener, logger));
}

const parsed = parseCli(process.argv.slice(2), process.env);
if (parsed.kind === "exit") {
  (parsed.code === 0 ? process.stdout : process.stderr).write(parsed.message);
  process.exitCode = parsed.code;
} else {
  run(parsed.options).catch((error: unknown) => {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  });
}
