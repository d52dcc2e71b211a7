/**
 * The lines `npm run chaos` holds its figures to: one pure function, so that what fails a run is written once
 * and unit-tested. A part that did not run gives no figures and no lines. Each line names the figure, what was
 * measured, the limit, and whether it held; chaos prints them all and exits non-zero when one is crossed.
 */

export interface ChaosFigures {
  /** 1. the project's plugin server under refusals with a 64 MiB heap. */
  refusals?: { crashes: number; notRefused: number; firstHeapBytes: number; lastHeapBytes: number };
  /** 2 and 3. chat load while the plugin server is killed, the service URL on the refusing host. */
  kills?: { providerMisrouted: number; unroutedClient: number; killsNeverRecovered: number };
  /** 4. a 429-suspended entry after a kill and respawn, with the state file; rotation continuity. */
  restart?: { requestsToSuspended: number; rotationContinued: number; rotationCount: number };
  /**
   * 5. one dead endpoint of two, the unreachable bench on and off: failed answers with the bench on, the benches
   * logged and the connections of the load; shares of failed answers (0..1) on and off.
   */
  dead?: {
    failedBenchOn: number;
    benches: number;
    concurrency: number;
    failedShareBenchOn: number;
    failedShareBenchOff: number;
  };
  /** 6. proxy throughput with and without a flood of concurrent status GETs; crashes meanwhile. */
  statusFlood?: { baselineRps: number; floodedRps: number; crashes: number };
}

export interface ChaosLine {
  figure: string;
  value: string;
  limit: string;
  held: boolean;
}

/** Heap after the refusals may exceed the first reading by this share (GC timing, lazily compiled code). */
export const HEAP_SLACK = 0.25;
/** Largest drop of proxy throughput a flood of status GETs may cause. */
export const STATUS_FLOOD_DROP = 0.1;

export function chaosLines(f: ChaosFigures): ChaosLine[] {
  const lines: ChaosLine[] = [];
  const line = (figure: string, value: number | string, limit: string, held: boolean) =>
    lines.push({ figure, value: String(value), limit, held });
  const pct = (share: number) => `${(100 * share).toFixed(1)} %`;
  if (f.refusals !== undefined) {
    const r = f.refusals;
    line("1. crashes under refusals (64 MiB heap)", r.crashes, "0", r.crashes === 0);
    line("1. refusals answered by something else", r.notRefused, "0", r.notRefused === 0);
    const mib = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);
    const heapLimit = r.firstHeapBytes * (1 + HEAP_SLACK);
    line(
      "1. heap after the refusals (MiB, after a full GC)",
      mib(r.lastHeapBytes),
      `≤ ${mib(heapLimit)} (first reading + ${HEAP_SLACK * 100} %)`,
      r.lastHeapBytes <= heapLimit,
    );
  }
  if (f.kills !== undefined) {
    const k = f.kills;
    line(
      "2. requests at a provider without the plugin's rewrite",
      k.providerMisrouted,
      "0",
      k.providerMisrouted === 0,
    );
    line("2. clients answered 200 by an unrouted provider", k.unroutedClient, "0", k.unroutedClient === 0);
    line("3. kills never followed by a routed 200", k.killsNeverRecovered, "0", k.killsNeverRecovered === 0);
  }
  if (f.restart !== undefined) {
    const r = f.restart;
    line(
      "4. requests to the suspended entry after the respawn",
      r.requestsToSuspended,
      "0",
      r.requestsToSuspended === 0,
    );
    line(
      "4. rotation picks continuing the reference after the respawn",
      `${r.rotationContinued} of ${r.rotationCount}`,
      `${r.rotationCount} of ${r.rotationCount}`,
      r.rotationContinued === r.rotationCount,
    );
  }
  if (f.dead !== undefined) {
    const d = f.dead;
    // A bench stops new requests to the endpoint; those already in flight (at most one per connection) still
    // fail, once per bench. More than that means requests went to a benched endpoint.
    const inFlight = d.concurrency * Math.max(1, d.benches);
    line(
      "5. failed answers, dead endpoint benched",
      d.failedBenchOn,
      `≤ ${inFlight} (connections × benches)`,
      d.failedBenchOn <= inFlight,
    );
    line(
      "5. failed share, bench on against off",
      `${pct(d.failedShareBenchOn)} against ${pct(d.failedShareBenchOff)}`,
      "lower with the bench",
      d.failedShareBenchOn < d.failedShareBenchOff,
    );
  }
  if (f.statusFlood !== undefined) {
    const s = f.statusFlood;
    const drop = s.baselineRps === 0 ? 1 : (s.baselineRps - s.floodedRps) / s.baselineRps;
    line(
      "6. proxy throughput drop under the status flood",
      `${pct(drop)} (${s.baselineRps.toFixed(0)} → ${s.floodedRps.toFixed(0)} req/s)`,
      `< ${pct(STATUS_FLOOD_DROP)}`,
      drop < STATUS_FLOOD_DROP,
    );
    line("6. plugin server crashes under the status flood", s.crashes, "0", s.crashes === 0);
  }
  return lines;
}

/** The lines as a Markdown table. */
export function linesTable(lines: ChaosLine[]): string {
  const rows = lines.map((l) => `| ${l.figure} | ${l.value} | ${l.limit} | ${l.held ? "held" : "CROSSED"} |`);
  return ["| figure | measured | line | |", "|---|---:|---|---|", ...rows].join("\n");
}
