#!/usr/bin/env node
/**
 * `npm run bench:refusals`: heap and `events` map size of the plugin server after N refusals (the plugin
 * answering a body of `{` with kong.response.exit(400)), kong-pdk 0.6.0's stock server against the project's
 * (dist/pluginserver). Both run behind the Kong double, with --expose-gc so the heap is read after a full
 * collection; each reports through `kill -USR2` (a `status: {...}` line on stderr).
 *
 *   node dist/scripts/bench-refusals.js [--refusals 60000] [--concurrency 16]
 *
 * The stock variant is scripts/lib/stock-status-server.ts started by the double as the server: kong-pdk's own
 * Server, Listener and node-color-log logger, wired as bin/kong-js-pluginserver wires them, plus the SIGUSR2
 * status line. scripts/chaos.ts runs the same refusals with a 64 MiB heap limit.
 */
import { resolve } from "node:path";
import { KongDouble, stockServerBin } from "../kong-double";
import { commandArgs, commandFailed } from "./lib/command";
import { PLUGIN, readStatus, refusalConfig, refuse, stockStatusServerBin } from "./lib/refusals";

async function measure(variant: "stock" | "project", refusals: number, concurrency: number) {
  const kong = await KongDouble.start({
    pluginServers: [
      {
        name: PLUGIN,
        pluginsDirectory: resolve(__dirname, "../plugins"),
        nodeArgs: ["--expose-gc"],
        ...(variant === "stock" && { serverBin: stockStatusServerBin() }),
      },
    ],
  });
  try {
    await kong.loadConfig(refusalConfig());
    await refuse(kong, 1, 1); // starts the instance
    await kong.settled();
    const before = await readStatus(kong);
    const started = Date.now();
    const refused = await refuse(kong, refusals, concurrency);
    const seconds = (Date.now() - started) / 1000;
    await kong.settled();
    const after = await readStatus(kong);
    const respawned = kong.logs.some((l) => /external pluginserver .* terminated/.test(l.message));
    return { variant, refused, seconds, before, after, respawned };
  } finally {
    await kong.stop();
  }
}

async function main(): Promise<void> {
  const { values } = commandArgs("bench-refusals", {
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

main().catch(commandFailed("bench-refusals"));
