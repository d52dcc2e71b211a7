#!/usr/bin/env node
/**
 * `npm run chaos`: the failure paths of design.md measured at full size through the Kong double (the real
 * plugin server as a child process, mock providers on loopback, real sockets). Not a test and not run in CI:
 * it prints figures, each with what it measures, then the lines they are held to (scripts/lib/chaos-lines.ts:
 * 0 unrouted, 0 crashes, heap back to its first reading, suspension kept, ...) and exits 1 when one is crossed.
 *
 *   1. refusals vs heap: N refusals with the plugin server limited to a 64 MiB heap, kong-pdk's stock server
 *      against the project's: events map and heap at intervals, crashes (respawns) counted.
 *   2. requests misrouted after a kill: chat load while the plugin server is SIGKILLed a few times, the
 *      service URL on the refusing host (the project's style) and on a real provider (the old style).
 *   3. recovery time: kill → server listening again → first routed 200, per kill (from the runs of 2).
 *   4. kept across a restart: a 429-suspended entry's requests in the N seconds after a kill and respawn, with
 *      the state file, without it, and without a suspension; rotation continuity over a kill.
 *   5. dead endpoints: one entry on a port nothing listens on, one healthy: failed share with the
 *      unreachable bench on and off.
 *   6. status flood: proxy throughput with and without --flood (1,000) concurrent GETs on the status listener.
 *
 *   node dist/scripts/chaos.js [--quick] [--refusals 200000] [--concurrency 32] [--kills 3]
 *     [--load-seconds 15] [--after-seconds 10] [--dead-seconds 10] [--flood-seconds 5]
 *     [--flood 1000] [--parts 1,2,4,5,6]
 *
 * --quick: 20,000 refusals, 2 kills in 5 s, 3 s after the respawn, 3 s of dead endpoint. The double resolves
 * names as Kong's DNS client does: one query for concurrent lookups, a name not found remembered for 30 s.
 *
 * The double is not Kong: what it does while the plugin server is down is Kong 3.9's fail-open (the request
 * proxied to the service's own URL without the plugin); what it answers for a host that does not resolve is
 * whatever the double does today. Those figures are counted, not judged.
 */
import { fork } from "node:child_process";
import { createServer } from "node:net";
import { resolve } from "node:path";
import { Agent, request } from "undici";
import { KongDouble } from "../kong-double";
import { type ChaosFigures, chaosLines, linesTable } from "./lib/chaos-lines";
import { commandArgs, commandFailed } from "./lib/command";
import { PLUGIN, readStatus, refusalConfig, refuse, stockStatusServerBin } from "./lib/refusals";
import type { FloodTally } from "./lib/status-flood";
import { statusListenerUrl } from "./lib/status-url";
import { type MockProvider, startMockProvider } from "./mock-provider";

const UNROUTED = "http://unrouted.model-based-round-robin.invalid/v1";
const STATE_FILE_ENV = "MODEL_BASED_ROUND_ROBIN_STATE_FILE";
const ROUTED_MODEL = "routed-model";
const KEY = "Bearer chaos-key";
const CLIENT_BODY = JSON.stringify({ model: "client-model", messages: [{ role: "user", content: "hi" }] });

const { values } = commandArgs("chaos", {
  options: {
    quick: { type: "boolean", default: false },
    refusals: { type: "string" },
    concurrency: { type: "string", default: "32" },
    kills: { type: "string" },
    "load-seconds": { type: "string" },
    "after-seconds": { type: "string" },
    "dead-seconds": { type: "string" },
    "flood-seconds": { type: "string" },
    flood: { type: "string", default: "1000" },
    parts: { type: "string", default: "1,2,4,5,6" },
  },
});
const quick = values.quick === true;
const opts = {
  refusals: Number(values.refusals ?? (quick ? 20_000 : 200_000)),
  concurrency: Number(values.concurrency),
  kills: Number(values.kills ?? (quick ? 2 : 3)),
  loadSeconds: Number(values["load-seconds"] ?? (quick ? 5 : 15)),
  afterSeconds: Number(values["after-seconds"] ?? (quick ? 3 : 10)),
  deadSeconds: Number(values["dead-seconds"] ?? (quick ? 3 : 10)),
  floodSeconds: Number(values["flood-seconds"] ?? (quick ? 3 : 5)),
  flood: Number(values.flood),
  parts: new Set((values.parts ?? "").split(",").map((p) => p.trim())),
};

/** What each part measured, held to its lines at the end. */
const figures: ChaosFigures = {};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mib = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);
const pct = (part: number, whole: number) => (whole === 0 ? "-" : `${((100 * part) / whole).toFixed(1)} %`);
const seconds = (ms: number) => (ms / 1000).toFixed(1);

/** Settings in `env` reach only a server run outside Kong (a Kong-managed one sees no environment). */
function startDouble(
  launch: { env?: Record<string, string>; serverBin?: string; nodeArgs?: string[] } = {},
): Promise<KongDouble> {
  return KongDouble.start({
    pluginServers: [
      {
        name: PLUGIN,
        pluginsDirectory: resolve(__dirname, "../plugins"),
        ...launch,
        ...(launch.env !== undefined && { supervised: true }),
      },
    ],
  });
}

interface Entry {
  model: string;
  endpoint: string;
  weight?: number;
  auth_header_name?: string;
  auth_header_value?: string;
}

function chatConfig(serviceUrl: string, pluginConfig: { production_models: Entry[] } & object): object {
  return {
    _format_version: "3.0",
    services: [
      {
        name: "llm",
        url: serviceUrl,
        routes: [{ name: "chat", paths: ["/openai/v1"], strip_path: true }],
        plugins: [{ name: PLUGIN, config: pluginConfig }],
      },
    ],
  };
}

/** "Kong terminated the plugin server" lines so far: one per crash or kill (the double respawns each). */
function terminations(kong: KongDouble): number {
  return kong.logs.filter((l) => l.source === "kong" && /external pluginserver .* terminated/.test(l.message))
    .length;
}

/** Kills the plugin server with SIGKILL (as `kill -9 <pid>`); resolves when the respawned one listens. */
async function killAndWait(kong: KongDouble): Promise<{ killedAt: number; listeningAt: number }> {
  const server = kong.server(PLUGIN);
  const pid = server.pid;
  if (pid === undefined) throw new Error("no plugin server to kill");
  const killedAt = Date.now();
  process.kill(pid, "SIGKILL");
  await waitForServer(kong, pid);
  return { killedAt, listeningAt: Date.now() };
}

/** Waits until a plugin server other than `oldPid` runs and listens on its socket. */
async function waitForServer(kong: KongDouble, oldPid?: number): Promise<void> {
  const server = kong.server(PLUGIN);
  for (const deadline = Date.now() + 30_000; ; ) {
    const pid = server.pid;
    if (pid !== undefined && pid !== oldPid) break;
    if (Date.now() > deadline) throw new Error("the plugin server was not respawned");
    await sleep(5);
  }
  await server.whenReady();
}

// ---------------------------------------------------------------------------------------------------------
// Chat load

interface Sample {
  start: number;
  end: number;
  /** 0: the connection failed. */
  status: number;
  /** The `model` of a 200's body: the mock provider echoes the model it was asked for. */
  model?: string;
}

/** Closed-loop chat requests over `concurrency` connections until `stop()` says so; every answer recorded. */
function chatLoad(
  kong: KongDouble,
  concurrency: number,
  stop: () => boolean,
): { samples: Sample[]; done: Promise<void> } {
  const samples: Sample[] = [];
  const agent = new Agent({ connections: concurrency });
  const one = async (): Promise<Sample> => {
    const start = Date.now();
    try {
      const res = await request(`${kong.proxyUrl}/openai/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: CLIENT_BODY,
        dispatcher: agent,
        headersTimeout: 30_000,
        bodyTimeout: 30_000,
      });
      const text = await res.body.text();
      let model: string | undefined;
      if (res.statusCode === 200) {
        try {
          model = (JSON.parse(text) as { model?: string }).model;
        } catch {
          model = undefined;
        }
      }
      return { start, end: Date.now(), status: res.statusCode, ...(model !== undefined && { model }) };
    } catch {
      return { start, end: Date.now(), status: 0 };
    }
  };
  const done = Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (!stop()) samples.push(await one());
    }),
  ).then(() => agent.close());
  return { samples, done };
}

/** "200 routed: 12, 503: 40" for a set of samples; a 200 whose model is not `routed` is "200 unrouted". */
function tally(samples: Sample[], routed: (model: string | undefined) => boolean): string {
  const counts = new Map<string, number>();
  for (const s of samples) {
    const key =
      s.status === 200
        ? routed(s.model)
          ? "200 routed"
          : `200 unrouted (model ${s.model})`
        : s.status === 0
          ? "connection failed"
          : String(s.status);
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  if (counts.size === 0) return "none";
  return [...counts].map(([k, n]) => `${k}: ${n}`).join(", ");
}

// ---------------------------------------------------------------------------------------------------------
// 1. refusals vs heap

async function refusalsVsHeap(): Promise<void> {
  const { refusals, concurrency } = opts;
  const steps = 10;
  console.log(
    `\n## 1. Refusals vs heap (${refusals} refusals, plugin server under --max-old-space-size=64)\n`,
  );
  console.log(
    `Bodies of \`{\` (the plugin answers 400 with kong.response.exit) over ${concurrency} connections, the ` +
      "service URL refusing connections (127.0.0.1:9). At each tenth: the server's events map and heap after " +
      "a full GC (`kill -USR2`), seconds since the first refusal, crashes so far (each one respawned by the double after ≤ 1 s), and answers " +
      "that were not the plugin's 400 (the server was down: Kong's fail-open proxied them to the refusing " +
      "service URL).\n",
  );
  const results: { name: string; crashes: number; notRefused: number; seconds: number }[] = [];
  for (const variant of ["stock", "project"] as const) {
    const name =
      variant === "stock"
        ? "kong-js-pluginserver 0.6.0 (stock)"
        : "model-based-round-robin-pluginserver (project)";
    const kong = await startDouble({
      nodeArgs: ["--max-old-space-size=64", "--expose-gc"],
      ...(variant === "stock" && { serverBin: stockStatusServerBin() }),
    });
    try {
      await kong.loadConfig(refusalConfig());
      await refuse(kong, 1, 1);
      await kong.settled();
      console.log(`### ${name}\n`);
      console.log(
        "| refusals sent | seconds | events map | heap MiB | rss MiB | crashes so far | answers other than 400 |",
      );
      console.log("|---:|---:|---:|---:|---:|---:|---|");
      const statuses = new Map<number, number>();
      const started = Date.now();
      const heaps: number[] = [];
      let sent = 0;
      for (let step = 1; step <= steps; step++) {
        const chunk = Math.round((refusals * step) / steps) - sent;
        await refuse(kong, chunk, concurrency, statuses);
        sent += chunk;
        await kong.settled();
        let shown = "down | down | down";
        try {
          await waitForServer(kong);
          const s = await readStatus(kong);
          shown = `${s.events} | ${mib(s.heapUsed)} | ${mib(s.rss)}`;
          heaps.push(s.heapUsed);
        } catch {
          shown = "no status | - | -";
        }
        const other = [...statuses].filter(([code]) => code !== 400);
        const otherText =
          other.length === 0
            ? "0"
            : other.map(([code, n]) => `${n} × ${code === 0 ? "conn. failed" : code}`).join(", ");
        const at = seconds(Date.now() - started);
        console.log(`| ${sent} | ${at} | ${shown} | ${terminations(kong)} | ${otherText} |`);
      }
      const elapsed = Date.now() - started;
      const notRefused = [...statuses].filter(([c]) => c !== 400).reduce((a, [, n]) => a + n, 0);
      results.push({ name, crashes: terminations(kong), notRefused, seconds: elapsed / 1000 });
      // The stock server is the comparison; the project's is held to the lines.
      if (variant === "project") {
        figures.refusals = {
          crashes: terminations(kong),
          notRefused,
          firstHeapBytes: heaps[0] ?? Number.NaN,
          lastHeapBytes: heaps.at(-1) ?? Number.POSITIVE_INFINITY,
        };
      }
      console.log("");
    } finally {
      await kong.stop();
    }
  }
  console.log("| server | crashes (out of memory) | refusals answered by something else | seconds |");
  console.log("|---|---:|---:|---:|");
  for (const r of results)
    console.log(`| ${r.name} | ${r.crashes} | ${r.notRefused} | ${r.seconds.toFixed(1)} |`);
}

// ---------------------------------------------------------------------------------------------------------
// 2 and 3. misrouted requests and recovery after kills

interface KillRun {
  style: string;
  total: number;
  providerTotal: number;
  providerMisrouted: number;
  providerWrongModel: number;
  providerNoKey: number;
  providerPartial: number;
  kills: { downStatuses: string; listeningMs: number; routedMs: number | undefined }[];
  unroutedClient: number;
}

async function killRun(style: "refusing host" | "old style"): Promise<KillRun> {
  const provider = await startMockProvider({ name: "provider" });
  const kong = await startDouble();
  try {
    const serviceUrl = style === "refusing host" ? UNROUTED : `${provider.url}/v1`;
    await kong.loadConfig(
      chatConfig(serviceUrl, {
        production_models: [
          {
            model: ROUTED_MODEL,
            endpoint: `${provider.url}/v1`,
            auth_header_name: "Authorization",
            auth_header_value: KEY,
          },
        ],
      }),
    );
    for (let i = 0; i < 5; i++) await chatOnce(kong);
    await kong.settled();
    provider.clearRequests();

    const durationMs = opts.loadSeconds * 1000;
    const started = Date.now();
    let stopped = false;
    const load = chatLoad(kong, opts.concurrency, () => stopped);
    const killed: { killedAt: number; listeningAt: number }[] = [];
    for (let i = 1; i <= opts.kills; i++) {
      await sleep(Math.max(0, started + (durationMs * i) / (opts.kills + 1) - Date.now()));
      killed.push(await killAndWait(kong));
    }
    await sleep(Math.max(0, started + durationMs - Date.now()));
    stopped = true;
    await load.done;
    await kong.settled();

    const routed = (model: string | undefined) => model === ROUTED_MODEL;
    const samples = load.samples;
    const kills = killed.map(({ killedAt, listeningAt }) => {
      const firstRouted = samples
        .filter((s) => s.start >= killedAt && s.status === 200 && routed(s.model))
        .reduce((min, s) => Math.min(min, s.end), Number.POSITIVE_INFINITY);
      const recoveredAt = Number.isFinite(firstRouted) ? firstRouted : undefined;
      const down = samples.filter((s) => s.start >= killedAt && s.start < (recoveredAt ?? Infinity));
      return {
        downStatuses: tally(down, routed),
        listeningMs: listeningAt - killedAt,
        routedMs: recoveredAt === undefined ? undefined : recoveredAt - killedAt,
      };
    });
    const wrongModel = (r: MockProvider["requests"][number]) =>
      (r.json as { model?: unknown } | undefined)?.model !== ROUTED_MODEL;
    const noKey = (r: MockProvider["requests"][number]) => r.headers.authorization !== KEY;
    return {
      style,
      total: samples.length,
      providerTotal: provider.requests.length,
      providerMisrouted: provider.requests.filter((r) => wrongModel(r) || noKey(r)).length,
      providerWrongModel: provider.requests.filter(wrongModel).length,
      providerNoKey: provider.requests.filter(noKey).length,
      providerPartial: provider.requests.filter((r) => !wrongModel(r) && noKey(r)).length,
      kills,
      unroutedClient: samples.filter((s) => s.status === 200 && !routed(s.model)).length,
    };
  } finally {
    await kong.stop();
    await provider.close();
  }
}

async function misroutedAfterKills(): Promise<void> {
  console.log(
    `\n## 2. Requests misrouted after a kill (${opts.loadSeconds} s of chat load, ${opts.concurrency} connections, ` +
      `${opts.kills} × SIGKILL of the plugin server)\n`,
  );
  console.log(
    `Clients send \`model: client-model\` and no key; the plugin's one entry rewrites it to \`${ROUTED_MODEL}\` ` +
      "and adds `Authorization: Bearer chaos-key`. A request that reached the provider with another model or " +
      "without that key went there without the plugin (Kong's fail-open while the server was down). " +
      `Refusing host: service URL ${UNROUTED} (the project's style); old style: service URL = the provider's ` +
      "own endpoint.\n",
  );
  const runs: KillRun[] = [];
  for (const style of ["refusing host", "old style"] as const) runs.push(await killRun(style));
  // The old style is the comparison: it is expected to misroute.
  const refusing = runs[0] as KillRun;
  figures.kills = {
    providerMisrouted: refusing.providerMisrouted,
    unroutedClient: refusing.unroutedClient,
    killsNeverRecovered: refusing.kills.filter((k) => k.routedMs === undefined).length,
  };
  console.log(
    "| service URL | client requests | reached the provider | … without the plugin's rewrite (wrong model or no key) | wrong model | no key | routed model, no key | clients answered 200 by an unrouted provider |",
  );
  console.log("|---|---:|---:|---:|---:|---:|---:|---:|");
  for (const r of runs) {
    console.log(
      `| ${r.style} | ${r.total} | ${r.providerTotal} | ${r.providerMisrouted} | ${r.providerWrongModel} | ` +
        `${r.providerNoKey} | ${r.providerPartial} | ${r.unroutedClient} |`,
    );
  }
  console.log(
    "\nWith the refusing host no request can reach a provider through the service URL. A server that dies in " +
      "the middle of `access` leaves Kong going on with what the calls so far set (fail-open); the plugin " +
      "points the request at its endpoint last (set_target after the body, path and key), so a half-rewritten " +
      "request still goes to the refusing URL. A count above 0 in that row means that order was broken.",
  );
  console.log(
    "\nClient answers while the server was down (requests sent from the kill until the first routed 200 " +
      "came back):\n",
  );
  console.log("| service URL | kill | answers |");
  console.log("|---|---:|---|");
  for (const r of runs)
    r.kills.forEach((k, i) => {
      console.log(`| ${r.style} | ${i + 1} | ${k.downStatuses} |`);
    });

  console.log("\n## 3. Recovery time after a kill\n");
  console.log(
    "From the SIGKILL to the respawned server listening on its socket (the double, like Kong, respawns at " +
      "most once a second), and to the first 200 routed by the plugin again (first answer naming " +
      `\`${ROUTED_MODEL}\` to a request sent after the kill), in ms.\n`,
  );
  console.log("| service URL | kill | → listening ms | → first routed 200 ms |");
  console.log("|---|---:|---:|---:|");
  for (const r of runs)
    r.kills.forEach((k, i) => {
      console.log(`| ${r.style} | ${i + 1} | ${k.listeningMs} | ${k.routedMs ?? "never"} |`);
    });
}

// ---------------------------------------------------------------------------------------------------------
// 4. suspensions and rotation kept across a restart

/** One chat request; the model of its 200 (the entry that served it), else `HTTP <status>`. */
async function chatOnce(kong: KongDouble): Promise<string> {
  const res = await request(`${kong.proxyUrl}/openai/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: CLIENT_BODY,
  });
  const text = await res.body.text();
  if (res.statusCode !== 200) return `HTTP ${res.statusCode}`;
  return (JSON.parse(text) as { model: string }).model;
}

interface SuspensionRun {
  variant: string;
  firstAnswer: string;
  beforeKill: string;
  a: number;
  b: number;
}

async function suspensionRun(variant: "kept" | "not kept" | "no suspension"): Promise<SuspensionRun> {
  const a = await startMockProvider({ name: "a" });
  const b = await startMockProvider({ name: "b" });
  const kong = await startDouble(variant === "not kept" ? { env: { [STATE_FILE_ENV]: "" } } : {});
  try {
    await kong.loadConfig(
      chatConfig(UNROUTED, {
        production_models: [
          { model: "a", endpoint: `${a.url}/v1` },
          { model: "b", endpoint: `${b.url}/v1` },
        ],
      }),
    );
    let firstAnswer = "-";
    let beforeKill = "-";
    if (variant !== "no suspension") {
      a.failNext({ status: 429, headers: { "retry-after": "60" } });
      // The first pick is a or b: at most two requests until a has answered its 429.
      const answers: string[] = [];
      while (a.requests.length === 0) answers.push(await chatOnce(kong));
      firstAnswer = answers.join(", ");
      await kong.settled();
      const seen: string[] = [];
      for (let i = 0; i < 6; i++) seen.push(await chatOnce(kong));
      beforeKill = `a ${seen.filter((m) => m === "a").length} of ${seen.length}`;
    }
    await kong.settled();
    await sleep(300); // the state file is written 20 ms after a suspension
    await killAndWait(kong);
    a.clearRequests();
    b.clearRequests();
    let stopped = false;
    const load = chatLoad(kong, opts.concurrency, () => stopped);
    await sleep(opts.afterSeconds * 1000);
    stopped = true;
    await load.done;
    await kong.settled();
    return { variant, firstAnswer, beforeKill, a: a.requests.length, b: b.requests.length };
  } finally {
    await kong.stop();
    await a.close();
    await b.close();
  }
}

/** `count` sequential picks; a second batch after a kill when `kill` is set; the entries' letters. */
async function rotationRun(env: Record<string, string> | undefined, count: number, kill: boolean) {
  const provider = await startMockProvider({ name: "rotation" });
  const kong = await startDouble(env === undefined ? {} : { env });
  try {
    await kong.loadConfig(
      chatConfig(UNROUTED, {
        production_models: [
          { model: "A", endpoint: `${provider.url}/v1`, weight: 5 },
          { model: "B", endpoint: `${provider.url}/v1`, weight: 1 },
          { model: "C", endpoint: `${provider.url}/v1`, weight: 1 },
        ],
      }),
    );
    const picks = async (n: number) => {
      let out = "";
      for (let i = 0; i < n; i++) out += (await chatOnce(kong)).slice(0, 1);
      return out;
    };
    const first = await picks(count);
    if (!kill) return { first, second: await picks(count) };
    await kong.settled();
    await sleep(1500); // positions are written once a second while they move
    await killAndWait(kong);
    return { first, second: await picks(count) };
  } finally {
    await kong.stop();
    await provider.close();
  }
}

async function keptAcrossRestart(): Promise<void> {
  console.log(`\n## 4. Suspensions and rotation kept across a restart (SIGKILL, respawn)\n`);
  console.log(
    "Two entries of equal weight on two providers, service URL on the refusing host. Provider a answers one " +
      "429 with `retry-after: 60`; then the plugin server is killed, and chat load " +
      `(${opts.concurrency} connections) runs for ${opts.afterSeconds} s after the respawn. Kept: the project's ` +
      `server with its state file; not kept: the same with ${STATE_FILE_ENV}="" (no file, as under the stock ` +
      "server); no suspension: the same load without the 429, for the share a would get.\n",
  );
  const runs: SuspensionRun[] = [];
  for (const variant of ["kept", "not kept", "no suspension"] as const)
    runs.push(await suspensionRun(variant));
  console.log(
    "| state | answers until a's 429 | a's picks after the 429, before the kill | requests to a after the respawn | to b | a's share |",
  );
  console.log("|---|---|---|---:|---:|---:|");
  for (const r of runs) {
    console.log(
      `| ${r.variant} | ${r.firstAnswer} | ${r.beforeKill} | ${r.a} | ${r.b} | ${pct(r.a, r.a + r.b)} |`,
    );
  }

  const count = 10;
  console.log(
    `\nRotation continuity: weights A 5, B 1, C 1 (smooth weighted round robin, a cycle of 7); ${count} ` +
      `sequential requests, a pause of 1.5 s (positions are written once a second), a kill, ${count} more. ` +
      `The reference is ${2 * count} requests without a kill; "continues" counts the picks after the ` +
      "respawn that equal the reference's at the same position.\n",
  );
  const reference = await rotationRun(undefined, count, false);
  const kept = await rotationRun(undefined, count, true);
  const notKept = await rotationRun({ [STATE_FILE_ENV]: "" }, count, true);
  figures.restart = {
    requestsToSuspended: (runs[0] as SuspensionRun).a,
    rotationContinued: [...kept.second].filter((c, i) => c === reference.second[i]).length,
    rotationCount: count,
  };
  console.log("| run | before the kill | after the respawn | continues |");
  console.log("|---|---|---|---:|");
  const same = (x: string, y: string) => [...x].filter((c, i) => c === y[i]).length;
  console.log(`| reference (no kill) | ${reference.first} | ${reference.second} | - |`);
  console.log(
    `| kept | ${kept.first} | ${kept.second} | ${same(kept.second, reference.second)} of ${count} |`,
  );
  console.log(
    `| not kept (${STATE_FILE_ENV}="") | ${notKept.first} | ${notKept.second} | ` +
      `${same(notKept.second, reference.second)} of ${count} |`,
  );
}

// ---------------------------------------------------------------------------------------------------------
// 5. dead endpoints

/** A loopback port nothing listens on (bound once, then closed). */
async function deadPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as { port: number };
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

async function deadRun(benchSeconds: number | undefined) {
  const provider = await startMockProvider({ name: "live" });
  const kong = await startDouble();
  try {
    const port = await deadPort();
    await kong.loadConfig(
      chatConfig(UNROUTED, {
        production_models: [
          { model: "dead", endpoint: `http://127.0.0.1:${port}/v1` },
          { model: "live", endpoint: `${provider.url}/v1` },
        ],
        ...(benchSeconds !== undefined && { unreachable_suspend_duration: benchSeconds }),
      }),
    );
    let stopped = false;
    const load = chatLoad(kong, opts.concurrency, () => stopped);
    await sleep(opts.deadSeconds * 1000);
    stopped = true;
    await load.done;
    await kong.settled();
    const failed = load.samples.filter((s) => s.status !== 200);
    const statuses = tally(failed, () => false);
    const benches = kong.logs.filter((l) => l.source === "pdk" && /benched /.test(l.message)).length;
    return { total: load.samples.length, failed: failed.length, statuses, benches };
  } finally {
    await kong.stop();
    await provider.close();
  }
}

async function deadEndpoints(): Promise<void> {
  console.log(
    `\n## 5. Dead endpoints (${opts.deadSeconds} s of chat load, ${opts.concurrency} connections)\n`,
  );
  console.log(
    "Two entries of equal weight: one endpoint on a loopback port nothing listens on (connection refused: " +
      "Kong's own 502), one healthy provider. Failed = any answer but 200. Bench on: " +
      "`unreachable_suspend_duration` 5 s (default), doubling; off: 0.\n",
  );
  const on = await deadRun(undefined);
  const off = await deadRun(0);
  const share = (r: { failed: number; total: number }) => (r.total === 0 ? 1 : r.failed / r.total);
  figures.dead = {
    failedBenchOn: on.failed,
    benches: on.benches,
    concurrency: opts.concurrency,
    failedShareBenchOn: share(on),
    failedShareBenchOff: share(off),
  };
  console.log("| unreachable bench | requests | failed | failed share | failed answers | benches logged |");
  console.log("|---|---:|---:|---:|---|---:|");
  for (const [name, r] of [
    ["on (5 s, doubling)", on],
    ["off (0)", off],
  ] as const) {
    console.log(
      `| ${name} | ${r.total} | ${r.failed} | ${pct(r.failed, r.total)} | ${r.statuses} | ${r.benches} |`,
    );
  }
}

// ---------------------------------------------------------------------------------------------------------
// 6. status flood

/**
 * `count` GETs kept in flight on the status listener by a process of its own (lib/status-flood.ts), so that the
 * flood's sockets weigh on the plugin server, not on the double in this process; `stop()` resolves to its tally.
 */
async function startStatusFlood(base: string, count: number): Promise<{ stop(): Promise<FloodTally> }> {
  const child = fork(resolve(__dirname, "lib/status-flood.js"), [base, String(count)], { stdio: "inherit" });
  await new Promise<void>((started, failed) => {
    child.once("message", () => started());
    child.once("exit", (code) => failed(new Error(`the status flood exited with ${code}`)));
  });
  return {
    stop: () =>
      new Promise<FloodTally>((done) => {
        child.once("message", (tally) => done(tally as FloodTally));
        child.send("stop");
      }),
  };
}

async function statusFlood(): Promise<void> {
  const rounds = quick ? 2 : 3;
  console.log(
    `\n## 6. Status flood (${opts.flood} concurrent GETs on the status listener, ${opts.floodSeconds} s per run, ` +
      `${rounds} rounds)\n`,
  );
  console.log(
    `Chat load over ${opts.concurrency} connections through the double, the plugin server with its status ` +
      `listener on; alternately alone and beside ${opts.flood} GETs kept in flight (half /status, half /metrics, ` +
      "each on a fresh connection, as a flood of scrapers would). Routed 200s per second, and what the flood got: " +
      "answered (at the listener's pace: the rest wait their turn on their connections), or closed at the door.\n",
  );
  const provider = await startMockProvider({ name: "provider" });
  const kong = await startDouble({ env: { MODEL_BASED_ROUND_ROBIN_STATUS_LISTEN: "127.0.0.1:0" } });
  try {
    await kong.loadConfig(
      chatConfig(UNROUTED, { production_models: [{ model: ROUTED_MODEL, endpoint: `${provider.url}/v1` }] }),
    );
    for (let i = 0; i < 5; i++) await chatOnce(kong);
    const base = await statusListenerUrl(kong, 10_000);
    const crashesBefore = terminations(kong);
    const run = async (flooded: boolean) => {
      let stopped = false;
      const flood = flooded ? await startStatusFlood(base, opts.flood) : undefined;
      const started = Date.now();
      const load = chatLoad(kong, opts.concurrency, () => stopped);
      await sleep(opts.floodSeconds * 1000);
      stopped = true;
      await load.done;
      const secondsRun = (Date.now() - started) / 1000;
      const tally = await flood?.stop();
      provider.clearRequests();
      const routed = load.samples.filter((x) => x.status === 200 && x.model === ROUTED_MODEL).length;
      return { rps: routed / secondsRun, flood: tally };
    };
    console.log("| round | alone req/s | flooded req/s | flood answered | flood closed |");
    console.log("|---:|---:|---:|---:|---:|");
    const alone: number[] = [];
    const flooded: number[] = [];
    for (let i = 1; i <= rounds; i++) {
      const a = await run(false);
      const f = await run(true);
      alone.push(a.rps);
      flooded.push(f.rps);
      console.log(
        `| ${i} | ${a.rps.toFixed(0)} | ${f.rps.toFixed(0)} | ${f.flood?.answered ?? 0} | ${f.flood?.closed ?? 0} |`,
      );
    }
    const mean = (xs: number[]) => xs.reduce((x, y) => x + y, 0) / xs.length;
    figures.statusFlood = {
      baselineRps: mean(alone),
      floodedRps: mean(flooded),
      crashes: terminations(kong) - crashesBefore,
    };
    console.log(
      `\nMean: ${mean(alone).toFixed(0)} req/s alone, ${mean(flooded).toFixed(0)} req/s flooded ` +
        `(${pct(mean(alone) - mean(flooded), mean(alone))} drop); plugin server crashes: ${figures.statusFlood.crashes}.`,
    );
  } finally {
    await kong.stop();
    await provider.close();
  }
}

// ---------------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const started = Date.now();
  console.log("# Chaos: the failure paths through the Kong double");
  console.log(
    `\nnode ${process.version}, ${opts.concurrency} connections${quick ? ", --quick" : ""}; parts ` +
      `${[...opts.parts].join(", ")}. The double is not Kong: it runs the real plugin server and does what ` +
      "Kong 3.9 does when the server is down (fail-open), and resolves names as Kong's DNS client does.",
  );
  const parts: [string, () => Promise<void>][] = [
    ["1", refusalsVsHeap],
    ["2", misroutedAfterKills],
    ["4", keptAcrossRestart],
    ["5", deadEndpoints],
    ["6", statusFlood],
  ];
  for (const [id, run] of parts) {
    if (!opts.parts.has(id) && !(id === "2" && opts.parts.has("3"))) continue;
    const t = Date.now();
    await run();
    console.log(`\n(part ${id === "2" ? "2 and 3" : id}: ${seconds(Date.now() - t)} s)`);
  }
  console.log(`\nTotal: ${seconds(Date.now() - started)} s`);
  const lines = chaosLines(figures);
  console.log("\n## Lines\n");
  console.log(linesTable(lines));
  const crossed = lines.filter((l) => !l.held);
  if (crossed.length > 0) {
    console.log(`\n${crossed.length} line(s) crossed: ${crossed.map((l) => l.figure).join("; ")}`);
    process.exitCode = 1;
  } else console.log("\nEvery line held.");
}

main().catch(commandFailed("chaos"));
