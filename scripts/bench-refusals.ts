#!/usr/bin/env node
/**
 * `npm run bench:refusals`: heap and `events` map size of the plugin server after N refusals (the plugin
 * answering a body of `{` with kong.response.exit(400)), kong-pdk 0.6.0's stock server against the project's
 * (dist/pluginserver). Both run behind the Kong double, with --expose-gc so the heap is read after a full
 * collection; each reports through `kill -USR2` (a `status: {...}` line on stderr).
 *
 *   node dist/scripts/bench-refusals.js [--refusals 60000] [--concurrency 16]
 *
 * The stock variant is this file started by the double as the server: with kong-pdk's own Server, Listener
 * and node-color-log logger, wired as bin/kong-js-pluginserver wires them, plus the SIGUSR2 status line.
 */
import { createRequire } from "node:module";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { Agent, request } from "undici";
import { parseCli } from "../pluginserver/cli";
import { KongDouble, stockServerBin } from "./kong-double";

const PLUGIN = "model-based-round-robin";

interface Status {
  events: number;
  heapUsed: number;
  rss: number;
}

function statusLine(events: number): string {
  (globalThis as { gc?: () => void }).gc?.();
  const { heapUsed, rss } = process.memoryUsage();
  return `${new Date().toISOString()} [INFO] status: ${JSON.stringify({ events, heapUsed, rss })}\n`;
}

/** kong-js-pluginserver, as its bin file runs it, reporting its events map on SIGUSR2. */
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

async function status(kong: KongDouble): Promise<Status> {
  const pid = kong.server(PLUGIN).pid as number;
  const seen = kong.logs.length;
  process.kill(pid, "SIGUSR2");
  for (let i = 0; i < 250; i++) {
    for (const line of kong.logs.slice(seen)) {
      const match = / \[INFO\] status: (\{.*\})$/.exec(line.message);
      if (match !== null && line.message.includes(`:${pid}]`))
        return JSON.parse(match[1] as string) as Status;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error("the plugin server wrote no status line");
}

async function refuse(kong: KongDouble, count: number, concurrency: number): Promise<number> {
  const agent = new Agent({ connections: concurrency });
  let sent = 0;
  let refused = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (sent < count) {
        sent++;
        const res = await request(`${kong.proxyUrl}/openai/v1/chat/completions`, {
          method: "POST",
          headers: { host: "api.example.test", "content-type": "application/json" },
          body: "{",
          dispatcher: agent,
        });
        await res.body.dump();
        if (res.statusCode === 400) refused++;
      }
    }),
  );
  await agent.close();
  return refused;
}

async function measure(variant: "stock" | "project", refusals: number, concurrency: number) {
  const kong = await KongDouble.start({
    pluginServers: [
      {
        name: PLUGIN,
        pluginsDirectory: resolve(__dirname, "../plugins"),
        env: { NODE_OPTIONS: "--expose-gc" },
        ...(variant === "stock" && { serverBin: __filename }),
      },
    ],
  });
  try {
    await kong.loadConfig({
      _format_version: "3.0",
      services: [
        {
          name: "llm",
          url: "http://127.0.0.1:9/v1",
          routes: [{ name: "chat", paths: ["/openai/v1"], strip_path: true }],
          plugins: [
            {
              name: PLUGIN,
              config: { production_models: [{ model: "m", endpoint: "http://127.0.0.1:9/v1" }] },
            },
          ],
        },
      ],
    });
    await refuse(kong, 1, 1); // starts the instance
    await kong.settled();
    const before = await status(kong);
    const started = Date.now();
    const refused = await refuse(kong, refusals, concurrency);
    const seconds = (Date.now() - started) / 1000;
    await kong.settled();
    const after = await status(kong);
    const respawned = kong.logs.some((l) => /external pluginserver .* terminated/.test(l.message));
    return { variant, refused, seconds, before, after, respawned };
  } finally {
    await kong.stop();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      refusals: { type: "string", default: "60000" },
      concurrency: { type: "string", default: "16" },
    },
  });
  const refusals = Number(values.refusals);
  const concurrency = Number(values.concurrency);
  const mb = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);
  console.log(`${refusals} refusals (400 from the plugin), ${concurrency} connections, heap after a full GC`);
  console.log(`stock server: ${stockServerBin()}`);
  console.log("| server | events before → after | heap MiB before → after | rss MiB after | seconds |");
  console.log("|---|---|---|---|---|");
  for (const variant of ["stock", "project"] as const) {
    const r = await measure(variant, refusals, concurrency);
    const note =
      r.refused === refusals && !r.respawned ? "" : ` (refused ${r.refused}, respawned ${r.respawned})`;
    console.log(
      `| ${variant === "stock" ? "kong-js-pluginserver 0.6.0" : "model-based-round-robin-pluginserver"} ` +
        `| ${r.before.events} → ${r.after.events} | ${mb(r.before.heapUsed)} → ${mb(r.after.heapUsed)} ` +
        `| ${mb(r.after.rss)} | ${r.seconds.toFixed(1)}${note} |`,
    );
  }
}

if (process.argv.includes("--plugins-directory") || process.argv.includes("-d")) {
  serveStock();
} else {
  main().catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  });
}
