#!/usr/bin/env node
/**
 * model-based-round-robin-pluginserver: the plugin server Kong starts (pluginserver_<name>_start_cmd) and
 * queries (..._query_cmd). kong-pdk 0.6.0's server and listener with two changes: events are freed once Kong
 * is done with them (./server), and logging is plain text on stderr (./logger), so stdout carries nothing but
 * the query command's JSON.
 *
 * Flags are kong-js-pluginserver's (kong-pdk cli.js), plus --pdk-call-timeout-ms. `kill -USR2 <pid>` logs
 * one `status` line (events map size, instances, heap) at info level: Kong shows it at log_level=info.
 */
import { createRequire } from "node:module";
import { join } from "node:path";

import Listener = require("kong-pdk/listener");

import { type CliOptions, parseCli } from "./cli";
import { PlainLogger } from "./logger";
import { EventReleasingServer } from "./server";
import { STATE_FILE_ENV, stateFileFor } from "./state-file";
import { KONG_SOCKET_TIMEOUT_MS } from "./timeouts";

/** kong-pdk's own copy of @msgpack/msgpack, the encoder its listener uses. */
const msgpack = createRequire(require.resolve("kong-pdk/server"))("@msgpack/msgpack") as {
  encode(value: unknown): Uint8Array;
};

function logStatus(server: EventReleasingServer, logger: PlainLogger): void {
  // With --expose-gc the figures are taken after a full collection, so they compare between runs.
  (globalThis as { gc?: () => void }).gc?.();
  const { heapUsed, rss } = process.memoryUsage();
  logger.info(`status: ${JSON.stringify({ ...server.status(), heapUsed, rss })}`);
}

async function run(opts: CliOptions): Promise<void> {
  const serving = opts.dumpPluginInfo === undefined && !opts.dumpAllPlugins;
  if (serving) {
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
  const server = new EventReleasingServer(opts.pluginsDirectory, logger, opts.callTimeoutMs);
  // As kong-js-pluginserver does: close() stops kong-pdk's instance expiry (an interval that would otherwise
  // keep a dump running and drop instances Kong still uses; Kong replaces instances itself).
  server.close();

  if (opts.dumpPluginInfo !== undefined) {
    process.stdout.write(msgpack.encode(await server.GetPluginInfo(opts.dumpPluginInfo)));
    return;
  }
  if (opts.dumpAllPlugins) {
    const names = [...server.getPlugins().keys()];
    const infos = await Promise.all(names.map((name) => server.GetPluginInfo(name)));
    process.stdout.write(`${JSON.stringify(infos)}\n`);
    return;
  }
  new Listener(server, join(opts.kongPrefix, opts.sockName)).serve();
  process.on("SIGUSR2", () => logStatus(server, logger));
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
