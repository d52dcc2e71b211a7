#!/usr/bin/env node
/**
 * `npm run bench`: what the plugin costs, measured through the Kong double with mock providers on loopback.
 *
 *   (a) the mock provider direct   (b) the double, no plugin   (c) the double, a no-op JS plugin (the floor
 *   any JS plugin pays)   (d) the double with model-based-round-robin (5:1:1 over two providers)
 *
 * Prints throughput and p50/p99 latency of each (autocannon, fixed connections and request count), the ratio
 * d/c, PDK round trips per request per phase, the plugin server's CPU time per request (utime+stime from
 * /proc), and picks per second of the selection core. The double is not Kong: absolute figures are the
 * double's; the ratios and round-trip counts are what carries over.
 *
 *   node dist/scripts/bench.js [--connections 10] [--amount 3000]
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { balancerFor } from "../plugins/model-based-round-robin/core/balancer";
import { normalizeConfig } from "../plugins/model-based-round-robin/core/config";
import { KongDouble } from "./kong-double";
import { commandArgs, commandFailed } from "./lib/command";
import { startMockProvider } from "./mock-provider";

const root = resolve(__dirname, "../..");
const { values } = commandArgs("bench", {
  options: { connections: { type: "string", default: "10" }, amount: { type: "string", default: "3000" } },
});
const connections = Number(values.connections);
const amount = Number(values.amount);
const BODY = JSON.stringify({
  model: "gpt-4.5",
  messages: [{ role: "user", content: "Hello, how are you today?" }],
});

interface Row {
  name: string;
  rps: number;
  p50: number;
  p99: number;
  errors: number;
}

/**
 * One autocannon run in a process of its own, so the load generator does not share an event loop (or a core's
 * time slices in the same process) with the double it measures.
 */
function load(url: string, count = amount): Promise<Row & { requests: number }> {
  const cli = resolve(root, "node_modules/autocannon/autocannon.js");
  const args = [cli, "-j", "-c", String(connections), "-a", String(count), "-m", "POST"];
  args.push("-H", "content-type=application/json", "-b", BODY, url);
  return new Promise((done, fail) => {
    execFile(process.execPath, args, { maxBuffer: 64 * 1024 * 1024 }, (error, stdout) => {
      if (error) return fail(error);
      const result = JSON.parse(stdout) as {
        requests: { total: number };
        latency: { p50: number; p99: number; mean: number };
        errors: number;
        non2xx: number;
      };
      done({
        name: url,
        // Little's law for a closed loop of `connections` clients: autocannon ends an `amount` run on its
        // one-second tick, so its wall time (and requests.average) is quantised to whole seconds.
        rps: (connections * 1000) / result.latency.mean,
        p50: result.latency.p50,
        p99: result.latency.p99,
        errors: result.errors + result.non2xx,
        requests: result.requests.total,
      });
    });
  });
}

/** CPU time (user + system) of a process, in microseconds, from /proc (clock ticks of 10 ms). */
function cpuMicros(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

function picksPerSecond(entries: number): number {
  const balancer = balancerFor(
    normalizeConfig({
      __plugin_id: `bench-${entries}`,
      production_models: Array.from({ length: entries }, (_, i) => ({
        model: `m${i}`,
        endpoint: "http://e.test",
        weight: 1 + (i % 5),
      })),
    }),
  );
  const n = 1_000_000;
  for (let i = 0; i < 10_000; i++) balancer.pick("production");
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) balancer.pick("production");
  return n / (Number(process.hrtime.bigint() - start) / 1e9);
}

async function main(): Promise<void> {
  const a = await startMockProvider({ name: "a" });
  const b = await startMockProvider({ name: "b" });
  const kong = await KongDouble.start({
    pluginServers: [
      { name: "model-based-round-robin", pluginsDirectory: resolve(root, "dist/plugins") },
      { name: "noop", pluginsDirectory: resolve(root, "spec/fixtures/plugins/noop") },
    ],
  });
  const models = [
    { model: "gpt-4o", endpoint: `${a.url}/v1`, weight: 5 },
    { model: "gpt-4o-mini", endpoint: `${b.url}/v1`, weight: 1 },
    { model: "o3-mini", endpoint: `${b.url}/v1`, weight: 1 },
  ];
  const service = (name: string, plugins: object[]) => ({
    name,
    url: `${a.url}/v1`,
    routes: [{ name, paths: [`/${name}`] }],
    plugins,
  });
  await kong.loadConfig({
    _format_version: "3.0",
    services: [
      service("none", []),
      service("noop", [{ name: "noop" }]),
      service("mbrr", [{ name: "model-based-round-robin", config: { production_models: models } }]),
      service("mbrr-proactive", [
        {
          name: "model-based-round-robin",
          config: { production_models: models, proactive_suspension: true },
        },
      ]),
    ],
  });

  const rows: Row[] = [];
  const perPlugin: { name: string; server: string; calls: Record<string, number>; cpuPerRequest: number }[] =
    [];
  try {
    rows.push({ ...(await load(`${a.url}/v1/chat/completions`)), name: "(a) mock provider direct" });
    for (const [name, label, server] of [
      ["none", "(b) double, no plugin", undefined],
      ["noop", "(c) double, no-op JS plugin", "noop"],
      ["mbrr", "(d) double, model-based-round-robin", "model-based-round-robin"],
      ["mbrr-proactive", "(d') the same, proactive_suspension on", "model-based-round-robin"],
    ] as const) {
      await load(`${kong.proxyUrl}/${name}/chat/completions`, Math.min(300, amount)); // warm-up
      await kong.settled();
      kong.pdkCalls.reset();
      const pid = server && kong.server(server).pid;
      const cpuBefore = server ? cpuMicros(pid) : 0;
      const row = await load(`${kong.proxyUrl}/${name}/chat/completions`);
      await kong.settled();
      rows.push({ ...row, name: label });
      if (server) {
        const calls: Record<string, number> = {};
        for (const phase of ["access", "log"]) {
          calls[phase] = kong.pdkCalls.total(phase) / row.requests;
          calls[`${phase} events`] = (kong.pdkCalls.events[phase] ?? 0) / row.requests;
        }
        perPlugin.push({
          name: label,
          server,
          calls,
          cpuPerRequest: (cpuMicros(pid) - cpuBefore) / row.requests,
        });
      }
    }
  } finally {
    await kong.stop();
    await a.close();
    await b.close();
  }

  const out = (s = "") => process.stdout.write(`${s}\n`);
  out(
    `bench: ${connections} connections, ${amount} requests per scenario, node ${process.version}; Kong TEST DOUBLE, not Kong`,
  );
  out();
  out("| scenario | req/s | p50 ms | p99 ms | errors |");
  out("|---|---:|---:|---:|---:|");
  for (const r of rows) out(`| ${r.name} | ${r.rps.toFixed(0)} | ${r.p50} | ${r.p99} | ${r.errors} |`);
  const c = rows[2] as Row;
  const d = rows[3] as Row;
  out();
  out(`d/c throughput: ${(d.rps / c.rps).toFixed(2)}   d/c p50 latency: ${(d.p50 / c.p50).toFixed(2)}`);
  out();
  out("| plugin | PDK calls/request in access (events) | in log (events) | plugin-server CPU µs/request |");
  out("|---|---:|---:|---:|");
  for (const p of perPlugin) {
    out(
      `| ${p.name} | ${p.calls.access?.toFixed(2)} (${p.calls["access events"]?.toFixed(2)}) | ${p.calls.log?.toFixed(2)} (${p.calls["log events"]?.toFixed(2)}) | ${p.cpuPerRequest.toFixed(0)} |`,
    );
  }
  out();
  out("| selection core | picks/s |");
  out("|---|---:|");
  for (const n of [2, 10, 100])
    out(`| ${n} entries | ${Math.round(picksPerSecond(n)).toLocaleString("en-US")} |`);
}

main().catch(commandFailed("bench"));
