import { describe, expect, it } from "vitest";
import { type ChaosFigures, chaosLines, linesTable } from "../../scripts/lib/chaos-lines";

const good: Required<ChaosFigures> = {
  refusals: { crashes: 0, notRefused: 0, firstHeapBytes: 20e6, lastHeapBytes: 21e6 },
  kills: { providerMisrouted: 0, unroutedClient: 0, killsNeverRecovered: 0 },
  restart: { requestsToSuspended: 0, rotationContinued: 10, rotationCount: 10 },
  dead: { failedBenchOn: 16, benches: 1, concurrency: 32, failedShareBenchOn: 0.2, failedShareBenchOff: 0.5 },
  statusFlood: { baselineRps: 500, floodedRps: 480, crashes: 0 },
};

const crossed = (f: ChaosFigures) =>
  chaosLines(f)
    .filter((l) => !l.held)
    .map((l) => l.figure);

describe("npm run chaos: the lines its figures are held to", () => {
  it("holds every line on good figures, one line per figure, none for a part that did not run", () => {
    expect(crossed(good)).toEqual([]);
    expect(chaosLines(good)).toHaveLength(12);
    expect(chaosLines({})).toEqual([]);
    expect(chaosLines({ kills: good.kills }).map((l) => l.figure)).toEqual([
      "2. requests at a provider without the plugin's rewrite",
      "2. clients answered 200 by an unrouted provider",
      "3. kills never followed by a routed 200",
    ]);
  });

  it.each<[string, ChaosFigures, string]>([
    ["a crash", { refusals: { ...good.refusals, crashes: 1 } }, "1. crashes under refusals (64 MiB heap)"],
    [
      "a refusal answered by Kong",
      { refusals: { ...good.refusals, notRefused: 3 } },
      "1. refusals answered by something else",
    ],
    [
      "a heap that grew",
      { refusals: { ...good.refusals, lastHeapBytes: 26e6 } },
      "1. heap after the refusals (MiB, after a full GC)",
    ],
    [
      "no heap reading at all",
      { refusals: { ...good.refusals, lastHeapBytes: Number.POSITIVE_INFINITY } },
      "1. heap after the refusals (MiB, after a full GC)",
    ],
    [
      "one unrouted request",
      { kills: { ...good.kills, providerMisrouted: 1 } },
      "2. requests at a provider without the plugin's rewrite",
    ],
    [
      "one unrouted 200",
      { kills: { ...good.kills, unroutedClient: 1 } },
      "2. clients answered 200 by an unrouted provider",
    ],
    [
      "a kill never recovered",
      { kills: { ...good.kills, killsNeverRecovered: 1 } },
      "3. kills never followed by a routed 200",
    ],
    [
      "a suspension lost",
      { restart: { ...good.restart, requestsToSuspended: 4 } },
      "4. requests to the suspended entry after the respawn",
    ],
    [
      "a rotation restarted",
      { restart: { ...good.restart, rotationContinued: 7 } },
      "4. rotation picks continuing the reference after the respawn",
    ],
    [
      "a bench that does not help",
      { dead: { ...good.dead, failedShareBenchOn: 0.5 } },
      "5. failed share, bench on against off",
    ],
    [
      "requests sent to a benched endpoint",
      { dead: { ...good.dead, failedBenchOn: 33 } },
      "5. failed answers, dead endpoint benched",
    ],
    [
      "a throughput drop of 10 %",
      { statusFlood: { ...good.statusFlood, floodedRps: 450 } },
      "6. proxy throughput drop under the status flood",
    ],
    [
      "a crash under the flood",
      { statusFlood: { ...good.statusFlood, crashes: 1 } },
      "6. plugin server crashes under the status flood",
    ],
  ])("crosses its line on %s", (_, figures, line) => {
    expect(crossed(figures)).toEqual([line]);
  });

  it("prints every line with its figure, limit and verdict", () => {
    const table = linesTable(chaosLines({ statusFlood: { baselineRps: 500, floodedRps: 100, crashes: 0 } }));
    expect(table.split("\n")).toEqual([
      "| figure | measured | line | |",
      "|---|---:|---|---|",
      "| 6. proxy throughput drop under the status flood | 80.0 % (500 → 100 req/s) | < 10.0 % | CROSSED |",
      "| 6. plugin server crashes under the status flood | 0 | 0 | held |",
    ]);
  });
});
