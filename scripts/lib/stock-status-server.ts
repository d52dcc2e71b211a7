#!/usr/bin/env node
/**
 * kong-pdk 0.6.0's stock kong-js-pluginserver as its bin file wires it (kong-pdk's own Server, Listener and
 * node-color-log logger, nothing of the project's server), plus one thing: `kill -USR2 <pid>` writes a
 * `status: {...}` line on stderr (events map size, heap after a full GC when run with --expose-gc, rss), the
 * line the project's server writes, so the refusal benches read both the same way. Started by the Kong double
 * as the server (`serverBin: stockStatusServerBin()`, see ./refusals).
 */
import { createRequire } from "node:module";
import { join } from "node:path";
import { parseCli } from "../../pluginserver/cli";

function statusLine(events: number): string {
  (globalThis as { gc?: () => void }).gc?.();
  const { heapUsed, rss } = process.memoryUsage();
  return `${new Date().toISOString()} [INFO] status: ${JSON.stringify({ events, heapUsed, rss })}\n`;
}

function serveStock(): void {
  const parsed = parseCli(process.argv.slice(2), process.env);
  if (parsed.kind === "exit") throw new Error(parsed.message);
  const opts = parsed.options;
  const fromPdk = createRequire(require.resolve("kong-pdk/server"));
  const Server = fromPdk("./server") as new (
    dir: string,
    logger: unknown,
  ) => {
    events: Map<number, unknown>;
    close(): void;
    getPlugins(): Map<string, unknown>;
    GetPluginInfo(name: string): Promise<unknown>;
  };
  const Listener = fromPdk("./listener") as new (ps: unknown, path: string) => { serve(): void };
  const logger = fromPdk("node-color-log") as { setLevel(level: string): void };
  logger.setLevel(opts.verbose > 0 ? "debug" : "info");
  const ps = new Server(opts.pluginsDirectory, logger);
  if (opts.dumpAllPlugins) {
    void Promise.all([...ps.getPlugins().keys()].map((n) => ps.GetPluginInfo(n))).then((v) =>
      process.stdout.write(`${JSON.stringify(v)}\n`),
    );
  } else {
    new Listener(ps, join(opts.kongPrefix, opts.sockName)).serve();
    process.on("SIGUSR2", () => process.stderr.write(statusLine(ps.events.size)));
  }
  ps.close();
}

serveStock();
