/**
 * The body-size section of `npm run bench` (issue 20): the plugin's default path (the relay) against its direct
 * path (failover_attempts 0) against a no-op JS plugin against no plugin, for chat bodies of the given sizes,
 * measured through the Kong double in interleaved rounds (every scenario of every size once per round, the
 * order rotated from round to round), reported as medians and as medians of each round's ratios: a load that
 * comes and goes on the machine weighs on the runs of one round alike.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { KongDouble } from "../../kong-double";
import { cpuMicros, load, median, type Row } from "./bench-load";

export interface SizeScenario {
  key: "none" | "noop" | "relay" | "direct";
  /** The route's path on the double. */
  path: string;
  label: string;
  /** The plugin server whose CPU time is read (none for Kong without plugins). */
  server: string | undefined;
}

export interface SizeRun {
  scenario: SizeScenario["key"];
  bytes: number;
  round: number;
  row: Row & { requests: number };
  /** PDK calls per request, by phase and method. */
  calls: Record<string, Record<string, number>>;
  /** Events (HandleEvent and the like) per request, by phase. */
  events: Record<string, number>;
  cpuPerRequest: number;
}

export interface SizeBenchOptions {
  root: string;
  kong: KongDouble;
  scenarios: SizeScenario[];
  sizes: number[];
  rounds: number;
  seconds: number;
  clients: number;
  progress: (what: string) => void;
}

/**
 * "1k,100k,1m" (k = 1000 bytes, m = 1,000,000; a plain number is bytes) into byte counts; "none" is no sizes.
 * Throws an error naming the bad item.
 */
export function parseSizes(text: string): number[] {
  if (text.trim() === "none") return [];
  return text.split(",").map((item) => {
    const match = /^\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*$/.exec(item);
    const bytes =
      match === null
        ? Number.NaN
        : Number(match[1]) * ({ k: 1000, m: 1_000_000 }[(match[2] ?? "").toLowerCase()] ?? 1);
    if (!Number.isFinite(bytes) || bytes < 200 || bytes > 64_000_000) {
      throw new Error(
        `--sizes: ${JSON.stringify(item)} is not a body size from 200 bytes to 64m (for example 1k,100k,1m)`,
      );
    }
    return Math.round(bytes);
  });
}

/** "1 KB", "100 KB", "1 MB" (decimal units, as the sizes are given). */
export function sizeLabel(bytes: number): string {
  if (bytes >= 1_000_000) return `${+(bytes / 1_000_000).toFixed(2)} MB`;
  if (bytes >= 1000) return `${+(bytes / 1000).toFixed(2)} KB`;
  return `${bytes} B`;
}

/**
 * A chat completion request of exactly `bytes` bytes: a system message and a long user message (a pasted
 * document, as long-context prompts are), plain ASCII so that bytes and characters agree.
 */
export function chatBody(bytes: number): string {
  const shell = (content: string) =>
    JSON.stringify({
      model: "gpt-4.5",
      messages: [
        { role: "system", content: "You are a careful assistant. Answer from the document only." },
        { role: "user", content },
      ],
      temperature: 0.2,
    });
  const room = bytes - shell("").length;
  if (room < 0) throw new Error(`a chat body cannot be as small as ${bytes} bytes`);
  const sentence = "The quarterly report lists revenue, costs and the outlook for each region in turn. ";
  const content = sentence.repeat(Math.ceil(room / sentence.length)).slice(0, room);
  return shell(content);
}

/** Runs the section: a warm-up of every scenario at every size, then the rounds. */
export async function sizeBench(options: SizeBenchOptions): Promise<SizeRun[]> {
  const { root, kong, scenarios, sizes, rounds, seconds, clients, progress } = options;
  const directory = mkdtempSync(join(tmpdir(), "bench-bodies-"));
  const files = new Map<number, string>();
  for (const bytes of sizes) {
    const file = join(directory, `${bytes}.json`);
    writeFileSync(file, chatBody(bytes));
    files.set(bytes, file);
  }
  const runs: SizeRun[] = [];
  try {
    // Runs of a request count, never of a duration: a duration run ends with requests in flight, whose PDK calls
    // and CPU would be counted against the requests that completed. The count is what the scenario's last run
    // did in `seconds` (the warm-up's first), so a slow scenario (1 MB on the direct path) does not take minutes.
    const rate = new Map<string, number>();
    const run = async (scenario: SizeScenario, bytes: number, count: number) => {
      const url = `${kong.proxyUrl}/${scenario.path}/chat/completions`;
      await kong.settled();
      kong.pdkCalls.reset();
      const pid = scenario.server === undefined ? undefined : kong.server(scenario.server).pid;
      const cpuBefore = pid === undefined ? 0 : cpuMicros(pid);
      const row = await load(root, url, {
        clients,
        count,
        body: { file: files.get(bytes) as string },
        timeoutSeconds: 120,
      });
      await kong.settled();
      const cpu = pid === undefined ? 0 : cpuMicros(pid) - cpuBefore;
      const requests = Math.max(1, row.requests);
      const calls: Record<string, Record<string, number>> = {};
      const events: Record<string, number> = {};
      for (const phase of ["access", "log"]) {
        calls[phase] = Object.fromEntries(
          Object.entries(kong.pdkCalls.byPhase(phase)).map(([method, n]) => [method, n / requests]),
        );
        events[phase] = (kong.pdkCalls.events[phase] ?? 0) / requests;
      }
      if (Number.isFinite(row.rps) && row.rps > 0) rate.set(`${scenario.key} ${bytes}`, row.rps);
      return { row, calls, events, cpuPerRequest: cpu / requests };
    };
    const countFor = (scenario: SizeScenario, bytes: number) =>
      Math.min(
        200_000,
        Math.max(2 * clients, Math.round((rate.get(`${scenario.key} ${bytes}`) ?? 0) * seconds)),
      );
    for (const bytes of sizes) {
      for (const scenario of scenarios) {
        progress(`sizes: warm-up ${sizeLabel(bytes)} /${scenario.path}`);
        await run(scenario, bytes, 2 * clients);
      }
    }
    for (let round = 0; round < rounds; round++) {
      // Each round starts with another scenario, so that none always runs first (or last) in a round.
      const order = scenarios.map((_, i) => scenarios[(i + round) % scenarios.length] as SizeScenario);
      for (const bytes of sizes) {
        for (const scenario of order) {
          const count = countFor(scenario, bytes);
          progress(
            `sizes: round ${round + 1}/${rounds} ${sizeLabel(bytes)} /${scenario.path} (${count} requests)`,
          );
          const measured = await run(scenario, bytes, count);
          runs.push({ scenario: scenario.key, bytes, round, ...measured });
        }
      }
    }
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
  return runs;
}

/** Goals of issue 20's table, for the lines that compare against them. */
const GOALS = {
  relayVsNoop1k: 0.45,
  cpuVsNoop1k: 5,
  relayVsNone100k: 0.35,
  relayVsNone1m: 0.45,
};

/** The section's tables, in Markdown. */
export function sizeReport(runs: SizeRun[], scenarios: SizeScenario[], sizes: number[]): string[] {
  const lines: string[] = [];
  const out = (line = "") => lines.push(line);
  const of = (key: SizeScenario["key"], bytes: number) =>
    runs.filter((r) => r.scenario === key && r.bytes === bytes);
  /** Median over the rounds of a/b, each round's two runs taken together. */
  const ratio = (
    a: SizeScenario["key"],
    b: SizeScenario["key"],
    bytes: number,
    value: (r: SizeRun) => number,
  ) => {
    const xs = of(a, bytes);
    const ys = of(b, bytes);
    const list = xs.flatMap((x) => {
      const y = ys.find((r) => r.round === x.round);
      return y === undefined ? [] : [value(x) / value(y)];
    });
    return { median: median(list), list };
  };
  const rps = (r: SizeRun) => r.row.rps;
  const cpu = (r: SizeRun) => r.cpuPerRequest;
  const total = (calls: Record<string, number>) => Object.values(calls).reduce((s, n) => s + n, 0);
  /** Calls per request of a scenario at a size, over all its runs (weighted by their requests). */
  const callsOf = (key: SizeScenario["key"], bytes: number) => {
    const list = of(key, bytes);
    const requests = list.reduce((s, r) => s + r.row.requests, 0);
    const sum: Record<string, Record<string, number>> = { access: {}, log: {} };
    const events: Record<string, number> = { access: 0, log: 0 };
    for (const r of list) {
      for (const phase of ["access", "log"]) {
        const into = sum[phase] as Record<string, number>;
        for (const [method, n] of Object.entries(r.calls[phase] ?? {}))
          into[method] = (into[method] ?? 0) + n * r.row.requests;
        events[phase] = (events[phase] ?? 0) + (r.events[phase] ?? 0) * r.row.requests;
      }
    }
    for (const phase of ["access", "log"]) {
      const into = sum[phase] as Record<string, number>;
      for (const method of Object.keys(into)) into[method] = (into[method] as number) / Math.max(1, requests);
      events[phase] = (events[phase] as number) / Math.max(1, requests);
    }
    return { calls: sum, events };
  };
  const f = (x: number, digits = 2) => (Number.isFinite(x) ? x.toFixed(digits) : "–");

  out(
    "| body | scenario | req/s | p50 ms | p99 ms | not 2xx | PDK calls/request in access (events) | in log (events) | plugin-server CPU µs/request |",
  );
  out("|---|---|---:|---:|---:|---:|---:|---:|---:|");
  for (const bytes of sizes) {
    for (const s of scenarios) {
      const list = of(s.key, bytes);
      if (list.length === 0) continue;
      const { calls, events } = callsOf(s.key, bytes);
      const plugin = s.server !== undefined;
      out(
        `| ${sizeLabel(bytes)} | ${s.label} | ${f(median(list.map(rps)), 0)} | ${median(list.map((r) => r.row.p50))} | ${median(list.map((r) => r.row.p99))} | ${list.reduce((n, r) => n + r.row.errors, 0)} | ${plugin ? `${f(total(calls.access ?? {}))} (${f(events.access ?? 0)})` : "–"} | ${plugin ? `${f(total(calls.log ?? {}))} (${f(events.log ?? 0)})` : "–"} | ${plugin ? f(median(list.map(cpu)), 0) : "–"} |`,
      );
    }
  }
  out();
  out("Ratios, each the median over the rounds of that round's two runs (throughput unless said):");
  out();
  out(
    "| body | relay / no plugin | direct / no plugin | no-op / no plugin | relay / no-op | direct / no-op | relay / direct | CPU relay / no-op | CPU direct / no-op |",
  );
  out("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
  for (const bytes of sizes) {
    out(
      `| ${sizeLabel(bytes)} | ${f(ratio("relay", "none", bytes, rps).median)} | ${f(ratio("direct", "none", bytes, rps).median)} | ${f(ratio("noop", "none", bytes, rps).median)} | ${f(ratio("relay", "noop", bytes, rps).median)} | ${f(ratio("direct", "noop", bytes, rps).median)} | ${f(ratio("relay", "direct", bytes, rps).median)} | ${f(ratio("relay", "noop", bytes, cpu).median, 1)}× | ${f(ratio("direct", "noop", bytes, cpu).median, 1)}× |`,
    );
  }

  const at = (bytes: number) => sizes.includes(bytes);
  const rounds = (r: { list: number[] }) => r.list.map((x) => x.toFixed(2)).join(", ");
  out();
  out("Issue 20's table, through the double (the goals are for real Kong):");
  out();
  out("| | relay (default) | direct (failover_attempts 0) | goal | rounds (relay) |");
  out("|---|---:|---:|---:|---|");
  if (at(1000)) {
    const relay = ratio("relay", "noop", 1000, rps);
    out(
      `| 1 KB body, throughput against the no-op JS plugin | ${f(relay.median)} | ${f(ratio("direct", "noop", 1000, rps).median)} | ≥ ${GOALS.relayVsNoop1k} | ${rounds(relay)} |`,
    );
    const cpuRatio = ratio("relay", "noop", 1000, cpu);
    out(
      `| plugin-server CPU per request against the no-op's, 1 KB | ${f(cpuRatio.median, 1)}× | ${f(ratio("direct", "noop", 1000, cpu).median, 1)}× | ≤ ${GOALS.cpuVsNoop1k}× | ${rounds(cpuRatio)} |`,
    );
  }
  for (const [bytes, goal] of [
    [100_000, GOALS.relayVsNone100k],
    [1_000_000, GOALS.relayVsNone1m],
  ] as const) {
    if (!at(bytes)) continue;
    const relay = ratio("relay", "none", bytes, rps);
    out(
      `| ${sizeLabel(bytes)} body against Kong without plugins | ${f(relay.median)} | ${f(ratio("direct", "none", bytes, rps).median)} | ≥ ${goal} | ${rounds(relay)} |`,
    );
  }
  const smallest = sizes[0];
  if (smallest !== undefined) {
    const relay = callsOf("relay", smallest).calls;
    const direct = callsOf("direct", smallest).calls;
    out(
      `| PDK calls, access + log, request with a body (${sizeLabel(smallest)}) | ${f(total(relay.access ?? {}))} + ${f(total(relay.log ?? {}))} | ${f(total(direct.access ?? {}))} + ${f(total(direct.log ?? {}))} | ≤ 3 + 0 | |`,
    );
  }

  out();
  out("PDK calls per request by method (all rounds):");
  out();
  out("| body | path | phase | calls per request |");
  out("|---|---|---|---|");
  for (const bytes of sizes) {
    for (const key of ["relay", "direct"] as const) {
      const { calls } = callsOf(key, bytes);
      for (const phase of ["access", "log"]) {
        const methods = Object.entries(calls[phase] ?? {})
          .sort(([a], [b]) => a.localeCompare(b))
          .map(([method, n]) => `${method} ${f(n)}`)
          .join(", ");
        out(`| ${sizeLabel(bytes)} | ${key} | ${phase} | ${methods || "none"} |`);
      }
    }
  }
  return lines;
}
