#!/usr/bin/env node
/**
 * `npm run bench`: what the plugin costs, measured through the Kong double with mock providers on loopback.
 *
 *   (a) the mock provider direct   (b) the double, no plugin   (c) the double, a no-op JS plugin (the floor
 *   any JS plugin pays)   (d) the double with model-based-round-robin (5:1:1 over two providers), its default
 *   path (failover_attempts 1: Kong proxies to the relay in the plugin server)
 *
 * Prints throughput and p50/p99 latency of each (autocannon, fixed connections and request count), the ratio
 * d/c, PDK round trips per request per phase, the plugin server's CPU time per request (utime+stime from
 * /proc; the relay runs in that process, so its work is counted), and picks per second of the selection core.
 * The double is not Kong: absolute figures are the double's; the ratios and round-trip counts are what carries
 * over (and the double understates Kong's cost per PDK call about 2x).
 *
 * Body sizes (issue 20; --sizes, default 1k,100k,1m; "none" skips it): the default path (relay) against the
 * direct path (failover_attempts 0: access reads the body over the PDK socket and rewrites it) against the
 * no-op JS plugin against no plugin, a chat body of each size, --size-rounds interleaved rounds of
 * --size-seconds each, medians and the medians of each round's ratios; the double buffers bodies up to 1 MiB
 * in memory (client_body_buffer_size 1m, as the image sets it).
 *
 * With a redis-server on PATH (or --redis-server PATH), started here on a free loopback port and stopped at the
 * end, two more sections:
 *
 *   policy local against policy redis: the same 5:1:1 configuration in the same plugin server, measured in
 *   alternating rounds (--rounds), medians, their ratio, and the Redis commands sent during each run (none is
 *   expected: the request path never waits for Redis); then both side by side for 8 s, half the connections
 *   each, so that a load coming and going on the machine weighs on both alike;
 *
 *   propagation: two doubles (two nodes, each its own plugin server) with the same configuration, policy redis,
 *   one Redis, failover_attempts 0 (the direct path: the client gets the 429, and the log phase suspends after
 *   it; the relay suspends before its failover attempt, earlier still). A provider answers 429 with
 *   retry-after: 30 to a request through node A; measured from the end of that answer (a) to the change's
 *   arrival on the Redis channel, at a subscriber of the bench's own, after which node B is sent a full turn
 *   of the rotation (7 requests) that must all go elsewhere, and (b) with B polled back to back from A's
 *   answer, to the answer that proves B skips the entry (two in a row from other entries, which 5:1:1 never
 *   gives unless its first entry is out). Every suspension is a fresh plugin id.
 *
 *   node dist/scripts/bench.js [--connections 10] [--amount 3000] [--rounds 5] [--propagation 100]
 *     [--sizes 1k,100k,1m] [--size-rounds 3] [--size-seconds 3] [--redis-server redis-server]
 *
 * `--failover` runs only the failover comparison instead: failover off (failover_attempts 0, Kong proxies to
 * the provider) against on (the default, 1: Kong proxies to the relay), every first attempt answered, then
 * one entry of two answering 429 to everything (suspension off, so half the requests meet the 429: the relay
 * sends them to the other entry, without failover the client gets the 429).
 */
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import Redis from "ioredis";
import { KongDouble } from "../kong-double";
import { balancerFor } from "../plugins/model-based-round-robin/core/balancer";
import { normalizeConfig } from "../plugins/model-based-round-robin/core/config";
import { cpuMicros, load as loadRun, median, type Row } from "./lib/bench-load";
import {
  parseSizes,
  type SizeRun,
  type SizeScenario,
  sizeBench,
  sizeLabel,
  sizeReport,
} from "./lib/bench-sizes";
import { commandArgs, commandFailed } from "./lib/command";
import { type RedisServer, redisServerBin, startRedisServer } from "./lib/redis-server";
import { type MockProvider, startMockProvider } from "./mock-provider";

const root = resolve(__dirname, "../..");
const { values } = commandArgs("bench", {
  options: {
    connections: { type: "string", default: "10" },
    amount: { type: "string", default: "3000" },
    rounds: { type: "string", default: "5" },
    propagation: { type: "string", default: "100" },
    "redis-server": { type: "string", default: "redis-server" },
    failover: { type: "boolean", default: false },
    sizes: { type: "string", default: "1k,100k,1m" },
    "size-rounds": { type: "string", default: "3" },
    "size-seconds": { type: "string", default: "3" },
  },
});
/** A whole number from an option, or `bench: --name ...` and exit 2. */
function wholeNumber(name: string, text: string, min: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) {
    process.stderr.write(`bench: --${name}: ${JSON.stringify(text)} is not a whole number >= ${min}\n`);
    process.exit(2);
  }
  return n;
}
const sizes = (() => {
  try {
    return parseSizes(values.sizes);
  } catch (error) {
    process.stderr.write(`bench: ${(error as Error).message}\n`);
    process.exit(2);
  }
})();
const sizeRounds = wholeNumber("size-rounds", values["size-rounds"], 1);
const sizeSeconds = wholeNumber("size-seconds", values["size-seconds"], 1);
const connections = wholeNumber("connections", values.connections, 1);
const amount = wholeNumber("amount", values.amount, 1);
const rounds = wholeNumber("rounds", values.rounds, 1);
const propagations = wholeNumber("propagation", values.propagation, 0);
const sideBySideSeconds = 8;
const PLUGIN = "model-based-round-robin";
const PLUGINS_DIRECTORY = resolve(root, "dist/plugins");
/** The channel policy redis publishes every change on (database 0). */
const CHANNEL = `${PLUGIN}:changes:0`;
/** What the bench is doing, on stderr (the figures go to stdout). */
const progress = (what: string) => process.stderr.write(`bench: ${what}\n`);
const BODY = JSON.stringify({
  model: "gpt-4.5",
  messages: [{ role: "user", content: "Hello, how are you today?" }],
});

/** A run of `count` requests, or of `seconds` seconds, over `clients` connections, with the small chat body. */
function load(
  url: string,
  count = amount,
  { clients = connections, seconds }: { clients?: number; seconds?: number } = {},
): Promise<Row & { requests: number }> {
  return loadRun(root, url, { clients, count, seconds, body: { text: BODY } });
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

/**
 * One scenario: a warm-up, then a measured run with the PDK calls, the plugin server's CPU time and, given a
 * client of the bench's Redis, the commands Redis processed during the measured run (not the warm-up, where a
 * configuration's first request makes its plugin read the state).
 */
interface Measured {
  row: Row & { requests: number };
  calls: Record<string, number>;
  cpuPerRequest: number;
  redisCommands: number;
}

async function measure(
  kong: KongDouble,
  path: string,
  server: string | undefined,
  redisProbe?: Redis,
): Promise<Measured> {
  progress(`/${path}`);
  await load(`${kong.proxyUrl}/${path}/chat/completions`, Math.min(300, amount)); // warm-up
  await kong.settled();
  kong.pdkCalls.reset();
  const pid = server === undefined ? undefined : kong.server(server).pid;
  const cpuBefore = server ? cpuMicros(pid) : 0;
  const commandsBefore = redisProbe ? await redisCommands(redisProbe) : 0;
  const row = await load(`${kong.proxyUrl}/${path}/chat/completions`);
  await kong.settled();
  // The INFO that read commandsBefore is counted in the second reading.
  const commands = redisProbe ? (await redisCommands(redisProbe)) - commandsBefore - 1 : 0;
  const calls: Record<string, number> = {};
  for (const phase of ["access", "log"]) {
    calls[phase] = kong.pdkCalls.total(phase) / row.requests;
    calls[`${phase} events`] = (kong.pdkCalls.events[phase] ?? 0) / row.requests;
  }
  return {
    row,
    calls,
    cpuPerRequest: server ? (cpuMicros(pid) - cpuBefore) / row.requests : 0,
    redisCommands: commands,
  };
}

/** Commands Redis has processed so far (the INFO asking for it included). */
async function redisCommands(client: Redis): Promise<number> {
  return Number(/total_commands_processed:(\d+)/.exec(await client.info("stats"))?.[1]);
}

/** Share of the machine's CPU time busy over a second, from /proc/stat: how loaded it is before the bench. */
async function busyShare(): Promise<number> {
  const sample = () => {
    const fields = (readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "")
      .trim()
      .split(/\s+/)
      .slice(1)
      .map(Number);
    const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
    return { idle, total: fields.reduce((sum, x) => sum + x, 0) };
  };
  const before = sample();
  await sleep(1000);
  const after = sample();
  return 1 - (after.idle - before.idle) / Math.max(1, after.total - before.total);
}

/** Nearest-rank percentile. */
function percentile(list: number[], p: number): number {
  const sorted = [...list].sort((x, y) => x - y);
  return (
    sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? Number.NaN
  );
}

function modelsOn(a: MockProvider, b: MockProvider) {
  return [
    { model: "gpt-4o", endpoint: `${a.url}/v1`, weight: 5 },
    { model: "gpt-4o-mini", endpoint: `${b.url}/v1`, weight: 1 },
    { model: "o3-mini", endpoint: `${b.url}/v1`, weight: 1 },
  ];
}

/** The body-size section's scenarios, routes of the main double. */
const SIZE_SCENARIOS: SizeScenario[] = [
  { key: "none", path: "none", label: "no plugin", server: undefined },
  { key: "noop", path: "noop", label: "no-op JS plugin", server: "noop" },
  { key: "relay", path: "mbrr", label: "model-based-round-robin, default (relay)", server: PLUGIN },
  {
    key: "direct",
    path: "mbrr-direct",
    label: "model-based-round-robin, failover_attempts 0 (direct)",
    server: PLUGIN,
  },
];

interface PolicyRun {
  policy: "local" | "redis";
  measured: Measured;
}

interface Propagation {
  /** From the end of A's 429 answer to the change's arrival at the bench's subscriber, ms. */
  toChannel: number[];
  /** Requests sent to B after the arrival, and how many of them B still routed to the suspended entry. */
  afterMessage: { sent: number; toSuspended: number; firstToSuspended: number; failed: number };
  /** From the end of A's 429 answer to the end of the answer proving B skips the entry, B polled, ms. */
  polled: number[];
  /** Suspensions whose message (or proof on B) did not come within 2 s. */
  missed: number;
}

async function chat(url: string): Promise<{ status: number; model: string | undefined; doneAt: number }> {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: BODY,
  });
  const text = await res.text();
  const doneAt = performance.now();
  let model: string | undefined;
  try {
    model = (JSON.parse(text) as { model?: string }).model;
  } catch {
    model = undefined;
  }
  return { status: res.status, model, doneAt };
}

/** Two nodes (doubles, each its own plugin server), policy redis on one Redis: see the header. */
async function measurePropagation(
  redis: RedisServer,
  a: MockProvider,
  b: MockProvider,
  n: number,
): Promise<Propagation> {
  const ids = Array.from({ length: 2 * n }, () => randomUUID());
  const config = {
    _format_version: "3.0",
    services: ids.map((id, i) => ({
      name: `p${i}`,
      url: `${a.url}/v1`,
      routes: [{ name: `p${i}`, paths: [`/p${i}`] }],
      plugins: [
        {
          id,
          name: PLUGIN,
          config: {
            production_models: modelsOn(a, b),
            policy: "redis",
            redis: { host: redis.host, port: redis.port },
            // The direct path: the suspension is made in the log phase, after the client's 429 answer, whose
            // end is where the measurement starts. The relay suspends before its failover attempt, so earlier
            // than the client's (200) answer ends, which would make the times below negative; what it publishes
            // and how node B applies it are the same code.
            failover_attempts: 0,
          },
        },
      ],
    })),
  };
  const pluginServers = [{ name: PLUGIN, pluginsDirectory: PLUGINS_DIRECTORY }];
  const nodeA = await KongDouble.start({ pluginServers, config });
  const nodeB = await KongDouble.start({ pluginServers, config }).catch(async (error: unknown) => {
    await nodeA.stop();
    throw error;
  });
  const subscriber = new Redis({ host: redis.host, port: redis.port, lazyConnect: true });
  const waiting = new Map<string, (at: number) => void>();
  subscriber.on("message", (_channel: string, message: string) => {
    const at = performance.now();
    const change = (JSON.parse(message) as { change?: { kind?: string; pluginId?: string } }).change;
    if (change?.kind === "suspended" && change.pluginId !== undefined) waiting.get(change.pluginId)?.(at);
  });
  const out: Propagation = {
    toChannel: [],
    afterMessage: { sent: 0, toSuspended: 0, firstToSuspended: 0, failed: 0 },
    polled: [],
    missed: 0,
  };
  try {
    await subscriber.connect();
    await subscriber.subscribe(CHANNEL);
    progress(`propagation: ${ids.length} configurations on two nodes`);
    // Every configuration's first request on a node waits for its initial read of Redis: not measured.
    for (let i = 0; i < ids.length; i++) {
      await chat(`${nodeA.proxyUrl}/p${i}/chat/completions`);
      await chat(`${nodeB.proxyUrl}/p${i}/chat/completions`);
    }
    await Promise.all([nodeA.settled(), nodeB.settled()]);

    /** A 429 with retry-after: 30 from provider a for gpt-4o, through node A; resolves with its end. */
    const suspendOnA = async (i: number): Promise<number> => {
      a.failNext({ status: 429, model: "gpt-4o", headers: { "retry-after": "30" } });
      for (let tries = 0; tries < 7; tries++) {
        const answer = await chat(`${nodeA.proxyUrl}/p${i}/chat/completions`);
        if (answer.status === 429) return answer.doneAt;
      }
      throw new Error(`node A never routed p${i} to gpt-4o`);
    };

    for (let i = 0; i < n; i++) {
      const id = ids[i] as string;
      const arrived = new Promise<number>((done) => waiting.set(id, done));
      const answeredAt = await suspendOnA(i);
      const at = await Promise.race([arrived, sleep(2000, Number.NaN, { ref: false })]);
      waiting.delete(id);
      if (Number.isNaN(at)) {
        out.missed++;
        continue;
      }
      out.toChannel.push(at - answeredAt);
      // A full turn of 5:1:1 on B: none may go to the suspended gpt-4o.
      for (let k = 0; k < 7; k++) {
        const answer = await chat(`${nodeB.proxyUrl}/p${i}/chat/completions`);
        out.afterMessage.sent++;
        if (answer.status !== 200) out.afterMessage.failed++;
        if (answer.model === "gpt-4o") {
          out.afterMessage.toSuspended++;
          if (k === 0) out.afterMessage.firstToSuspended++;
        }
      }
      await Promise.all([nodeA.settled(), nodeB.settled()]);
    }

    for (let i = n; i < 2 * n; i++) {
      const answeredAt = await suspendOnA(i);
      let elsewhereBefore = false;
      let proof = Number.NaN;
      while (performance.now() - answeredAt < 2000) {
        const answer = await chat(`${nodeB.proxyUrl}/p${i}/chat/completions`);
        const elsewhere = answer.status === 200 && answer.model !== "gpt-4o";
        if (elsewhere && elsewhereBefore) {
          proof = answer.doneAt - answeredAt;
          break;
        }
        elsewhereBefore = elsewhere;
      }
      if (Number.isNaN(proof)) out.missed++;
      else out.polled.push(proof);
      await Promise.all([nodeA.settled(), nodeB.settled()]);
    }
  } finally {
    progress("propagation: stopping the nodes");
    subscriber.disconnect();
    await nodeA.stop();
    await nodeB.stop();
  }
  return out;
}

/** The failover section alone (--failover): failover off and on, all answered, and half the entries at 429. */
async function failoverBench(): Promise<void> {
  const a = await startMockProvider({ name: "a" });
  const b = await startMockProvider({ name: "b" });
  // Answers 429 to every request (it never runs out of queued failures).
  const limited = await startMockProvider({ name: "limited" });
  limited.failNext({ status: 429, times: Number.MAX_SAFE_INTEGER });
  const kong = await KongDouble.start({
    pluginServers: [{ name: PLUGIN, pluginsDirectory: PLUGINS_DIRECTORY }],
  });
  const models = modelsOn(a, b);
  const halfLimited = [
    { model: "gpt-4o", endpoint: `${limited.url}/v1` },
    { model: "gpt-4o-mini", endpoint: `${a.url}/v1` },
  ];
  const service = (name: string, config: object) => ({
    name,
    url: `${a.url}/v1`,
    routes: [{ name, paths: [`/${name}`] }],
    plugins: [{ name: PLUGIN, config }],
  });
  await kong.loadConfig({
    _format_version: "3.0",
    services: [
      service("off", { production_models: models, failover_attempts: 0 }),
      service("on", { production_models: models, failover_attempts: 1 }),
      service("off-429", {
        production_models: halfLimited,
        on_quota_exceed_suspend_duration: 0,
        failover_attempts: 0,
      }),
      service("on-429", {
        production_models: halfLimited,
        on_quota_exceed_suspend_duration: 0,
        failover_attempts: 1,
      }),
    ],
  });
  const results: { label: string; m: Measured }[] = [];
  try {
    for (const [path, label] of [
      ["off", "5:1:1, every answer 200, failover_attempts 0 (Kong proxies to the provider)"],
      ["on", "5:1:1, every answer 200, failover_attempts 1, the default (Kong proxies to the relay)"],
      ["off-429", "1:1, one entry always 429 (not suspended), failover_attempts 0"],
      ["on-429", "1:1, one entry always 429 (not suspended), failover_attempts 1"],
    ] as const) {
      results.push({ label, m: await measure(kong, path, PLUGIN) });
    }
  } finally {
    await kong.stop();
    await Promise.all([a.close(), b.close(), limited.close()]);
  }
  const out = (line = "") => process.stdout.write(`${line}\n`);
  out(
    `bench --failover: ${connections} connections, ${amount} requests per scenario, node ${process.version}; Kong TEST DOUBLE, not Kong`,
  );
  out();
  out(
    "| scenario | req/s | p50 ms | p99 ms | not 2xx | PDK calls/request access + log | plugin-server CPU µs/request |",
  );
  out("|---|---:|---:|---:|---:|---:|---:|");
  for (const { label, m } of results) {
    out(
      `| ${label} | ${m.row.rps.toFixed(0)} | ${m.row.p50} | ${m.row.p99} | ${m.row.errors} | ${((m.calls.access ?? 0) + (m.calls.log ?? 0)).toFixed(2)} | ${m.cpuPerRequest.toFixed(0)} |`,
    );
  }
  const [off, on] = results;
  if (off !== undefined && on !== undefined)
    out(`\non/off throughput, all answered: ${(on.m.row.rps / off.m.row.rps).toFixed(2)}`);
}

async function main(): Promise<void> {
  if (values.failover) return failoverBench();
  const a = await startMockProvider({ name: "a" });
  const b = await startMockProvider({ name: "b" });
  const redis = await Promise.resolve()
    .then(() => startRedisServer(redisServerBin(values["redis-server"])))
    .catch((error: unknown) => {
      process.stderr.write(`bench: no Redis sections: ${(error as Error).message.split("\n")[0]}\n`);
      return undefined;
    });
  const kong = await KongDouble.start({
    pluginServers: [
      { name: PLUGIN, pluginsDirectory: PLUGINS_DIRECTORY },
      { name: "noop", pluginsDirectory: resolve(root, "spec/fixtures/plugins/noop") },
    ],
    // As the image sets it (KONG_NGINX_HTTP_CLIENT_BODY_BUFFER_SIZE=1m): bodies up to 1 MiB stay in memory.
    clientBodyBufferSize: 1024 * 1024,
  });
  const models = modelsOn(a, b);
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
      service("mbrr", [{ name: PLUGIN, config: { production_models: models } }]),
      service("mbrr-direct", [{ name: PLUGIN, config: { production_models: models, failover_attempts: 0 } }]),
      service("mbrr-proactive", [
        { name: PLUGIN, config: { production_models: models, proactive_suspension: true } },
      ]),
      ...(redis === undefined
        ? []
        : [
            service("mbrr-redis", [
              {
                name: PLUGIN,
                config: {
                  production_models: models,
                  policy: "redis",
                  redis: { host: redis.host, port: redis.port },
                },
              },
            ]),
          ]),
    ],
  });

  const rows: Row[] = [];
  const perPlugin: { name: string; calls: Record<string, number>; cpuPerRequest: number }[] = [];
  const policyRuns: PolicyRun[] = [];
  let sideBySide: { local: Row; redis: Row; clients: number } | undefined;
  let propagation: Propagation | undefined;
  let busy: number | undefined;
  let sizeRuns: SizeRun[] = [];
  try {
    busy = await busyShare();
    rows.push({ ...(await load(`${a.url}/v1/chat/completions`)), name: "(a) mock provider direct" });
    for (const [path, label, server] of [
      ["none", "(b) double, no plugin", undefined],
      ["noop", "(c) double, no-op JS plugin", "noop"],
      ["mbrr", "(d) double, model-based-round-robin, default path (relay)", PLUGIN],
      ["mbrr-direct", "(d') the same, failover_attempts 0 (direct path)", PLUGIN],
      ["mbrr-proactive", "(d'') the same as (d), proactive_suspension on", PLUGIN],
    ] as const) {
      const m = await measure(kong, path, server);
      rows.push({ ...m.row, name: label });
      if (server) perPlugin.push({ name: label, calls: m.calls, cpuPerRequest: m.cpuPerRequest });
    }
    if (sizes.length > 0) {
      sizeRuns = await sizeBench({
        root,
        kong,
        scenarios: SIZE_SCENARIOS,
        sizes,
        rounds: sizeRounds,
        seconds: sizeSeconds,
        clients: connections,
        progress,
      });
    }
    if (redis !== undefined) {
      const probe = new Redis({ host: redis.host, port: redis.port });
      try {
        for (let round = 0; round < rounds; round++) {
          // Alternating which goes first, so neither always runs on a warmer (or more loaded) machine.
          const order = round % 2 === 0 ? (["local", "redis"] as const) : (["redis", "local"] as const);
          for (const policy of order) {
            const measured = await measure(kong, policy === "local" ? "mbrr" : "mbrr-redis", PLUGIN, probe);
            policyRuns.push({ policy, measured });
          }
        }
        // Both at once, half the connections each, for the same seconds: whatever else loads the machine
        // loads both alike.
        progress("/mbrr and /mbrr-redis side by side");
        const half = Math.max(1, Math.floor(connections / 2));
        const [local, shared] = await Promise.all(
          ["mbrr", "mbrr-redis"].map((path) =>
            load(`${kong.proxyUrl}/${path}/chat/completions`, amount, {
              clients: half,
              seconds: sideBySideSeconds,
            }),
          ),
        );
        if (local !== undefined && shared !== undefined) sideBySide = { local, redis: shared, clients: half };
      } finally {
        probe.disconnect();
      }
    }
  } finally {
    await kong.stop();
  }
  try {
    if (redis !== undefined && propagations > 0)
      propagation = await measurePropagation(redis, a, b, propagations);
  } finally {
    await a.close();
    await b.close();
    progress("stopping");
    await redis?.close();
  }

  const out = (s = "") => process.stdout.write(`${s}\n`);
  out(
    `bench: ${connections} connections, ${amount} requests per scenario, node ${process.version}; Kong TEST DOUBLE, not Kong`,
  );
  out(
    `${availableParallelism()} cores; busy before the bench (other processes, 1 s sample): ${((busy ?? Number.NaN) * 100).toFixed(0)} %`,
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
  if (sizes.length > 0) {
    out();
    out(
      `body sizes: ${sizes.map(sizeLabel).join(", ")}; ${sizeRounds} interleaved rounds of ${sizeSeconds} s per scenario and size, ${connections} connections; client_body_buffer_size 1m`,
    );
    out();
    for (const line of sizeReport(sizeRuns, SIZE_SCENARIOS, sizes)) out(line);
  }
  out();
  out("| selection core | picks/s |");
  out("|---|---:|");
  for (const n of [2, 10, 100])
    out(`| ${n} entries | ${Math.round(picksPerSecond(n)).toLocaleString("en-US")} |`);

  if (redis === undefined) {
    out();
    out("policy redis and propagation: skipped (no redis-server; --redis-server PATH)");
    return;
  }
  out();
  out(
    `policy local vs policy redis: the same 5:1:1 configuration in the same plugin server, ${rounds} alternating rounds, medians; Redis ${redis.version} on loopback`,
  );
  out();
  out(
    "| policy | req/s | p50 ms | p99 ms | errors | PDK calls/request access + log | plugin-server CPU µs/request | Redis commands during the measured runs |",
  );
  out("|---|---:|---:|---:|---:|---:|---:|---:|");
  const byPolicy = (policy: PolicyRun["policy"]) => policyRuns.filter((r) => r.policy === policy);
  for (const policy of ["local", "redis"] as const) {
    const runs = byPolicy(policy);
    const m = runs.map((r) => r.measured);
    out(
      `| ${policy} | ${median(m.map((x) => x.row.rps)).toFixed(0)} | ${median(m.map((x) => x.row.p50))} | ${median(m.map((x) => x.row.p99))} | ${m.reduce((sum, x) => sum + x.row.errors, 0)} | ${median(m.map((x) => (x.calls.access ?? 0) + (x.calls.log ?? 0))).toFixed(2)} | ${median(m.map((x) => x.cpuPerRequest)).toFixed(0)} | ${m.reduce((sum, x) => sum + x.redisCommands, 0)} |`,
    );
  }
  const local = byPolicy("local").map((r) => r.measured.row);
  const shared = byPolicy("redis").map((r) => r.measured.row);
  // Each round's two runs are next to each other in time: their ratio is the least disturbed by a load that
  // comes and goes on the machine.
  const ratios = shared.map((row, i) => row.rps / (local[i] as Row).rps);
  const p50Ratios = shared.map((row, i) => row.p50 / (local[i] as Row).p50);
  const list = (xs: number[], digits = 2) => xs.map((x) => x.toFixed(digits)).join(", ");
  out();
  out(
    `redis/local throughput, median of the rounds' ratios: ${median(ratios).toFixed(2)} (rounds: ${list(ratios)}); p50 latency: ${median(p50Ratios).toFixed(2)} (rounds: ${list(p50Ratios)})`,
  );
  out(
    `req/s of the runs: local ${list(
      local.map((r) => r.rps),
      0,
    )}; redis ${list(
      shared.map((r) => r.rps),
      0,
    )}`,
  );

  if (sideBySide !== undefined) {
    const { local: l, redis: r, clients } = sideBySide;
    out();
    out(
      `side by side (${clients} connections each, the same ${sideBySideSeconds} s): local ${l.rps.toFixed(0)} req/s, p50 ${l.p50} ms, p99 ${l.p99} ms; redis ${r.rps.toFixed(0)} req/s, p50 ${r.p50} ms, p99 ${r.p99} ms; redis/local throughput ${(r.rps / l.rps).toFixed(2)}; errors ${l.errors + r.errors}`,
    );
  }

  if (propagation === undefined) return;
  const p = propagation;
  const stats = (list: number[]) =>
    `${percentile(list, 50).toFixed(1)} | ${percentile(list, 99).toFixed(1)} | ${Math.max(...list).toFixed(1)} | ${list.length}`;
  out();
  out(
    `propagation: two nodes (two doubles, each its own plugin server), policy redis, one Redis ${redis.version} on loopback; each suspension a fresh plugin id`,
  );
  out();
  out("| from the end of node A's 429 answer to | p50 ms | p99 ms | max ms | suspensions |");
  out("|---|---:|---:|---:|---:|");
  out(`| the change arriving on ${CHANNEL} (a subscriber of the bench) | ${stats(p.toChannel)} |`);
  out(
    `| node B skipping the entry, B polled back to back (end of the answer that proves it: an upper bound) | ${stats(p.polled)} |`,
  );
  out();
  out(
    `node B after the change arrived: ${p.afterMessage.toSuspended} of ${p.afterMessage.sent} requests routed to the suspended entry (the first request after it: ${p.afterMessage.firstToSuspended} of ${p.toChannel.length}); ${p.afterMessage.failed} not 200; ${p.missed} suspension(s) not seen within 2 s`,
  );
}

main().catch(commandFailed("bench"));
