import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it, vi } from "vitest";

type BalancerModule = typeof import("../../plugins/model-based-round-robin/core/balancer");
type ConfigModule = typeof import("../../plugins/model-based-round-robin/core/config");
type PersistenceModule = typeof import("../../plugins/model-based-round-robin/persistence");
type StateModule = typeof import("../../plugins/model-based-round-robin/core/process-state");

/** A fresh copy of the plugin's modules: what a restarted plugin server process starts with. */
async function freshProcess() {
  vi.resetModules();
  const balancer: BalancerModule = await import("../../plugins/model-based-round-robin/core/balancer");
  const config: ConfigModule = await import("../../plugins/model-based-round-robin/core/config");
  const persistence: PersistenceModule = await import("../../plugins/model-based-round-robin/persistence");
  const state: StateModule = await import("../../plugins/model-based-round-robin/core/process-state");
  return { ...balancer, ...config, ...persistence, recordOf: state.recordOf, onRejected: state.onRejected };
}

const raw = {
  __plugin_id: "kept",
  production_models: [
    { model: "a", endpoint: "http://a.test", weight: 3 },
    { model: "b", endpoint: "http://b.test", weight: 1 },
  ],
};

function models(
  balancer: { pick(env: "production"): { kind: string; entry?: { model: string } } },
  n: number,
) {
  return Array.from({ length: n }, () => balancer.pick("production").entry?.model ?? "none").join(" ");
}

describe("what the plugin learned survives a restart of its plugin server", () => {
  it("restores suspensions, suspects and rotation positions from the state file", async () => {
    const file = join(mkdtempSync(join(tmpdir(), "mbrr-state-")), "state.json");
    const before = await freshProcess();
    const kept = before.keepStateIn(file);
    const config = before.normalizeConfig(raw);
    const balancer = before.balancerFor(config);
    expect(models(balancer, 2)).toBe("a a");
    balancer.suspend("production", config.production[0]?.key ?? "", 60_000);
    balancer.markSuspect("production", config.production[0]?.key ?? "");
    await kept.flush();
    kept.stop();

    const after = await freshProcess();
    after.keepStateIn(file).stop();
    const restored = after.balancerFor(after.normalizeConfig(raw));
    expect(models(restored, 3)).toBe("b b b");
    expect(restored.takeProbe("production", config.production[0]?.key ?? "")).toBe(true);
  });

  it("continues the rotation where it stopped, with nothing suspended", async () => {
    const file = join(mkdtempSync(join(tmpdir(), "mbrr-state-")), "state.json");
    const before = await freshProcess();
    const kept = before.keepStateIn(file);
    const uninterrupted = models(before.balancerFor(before.normalizeConfig({ ...raw, __plugin_id: "x" })), 8);
    const balancer = before.balancerFor(before.normalizeConfig(raw));
    const first = models(balancer, 3);
    await kept.flush();
    kept.stop();

    const after = await freshProcess();
    after.keepStateIn(file).stop();
    const rest = models(after.balancerFor(after.normalizeConfig(raw)), 5);
    expect(`${first} ${rest}`).toBe(uninterrupted);
  });

  it("starts empty from a missing or unreadable file, and a process that changed nothing never writes", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mbrr-state-"));
    const file = join(dir, "state.json");
    writeFileSync(file, "{not json");
    const fresh = await freshProcess();
    const problems: string[] = [];
    const kept = fresh.keepStateIn(file, (m) => problems.push(m));
    expect(problems[0]).toMatch(/ignored unreadable state file/);
    await kept.flush();
    kept.stop();
    expect(readFileSync(file, "utf8")).toBe("{not json");
    expect(models(fresh.balancerFor(fresh.normalizeConfig(raw)), 4)).toBe("a a b a");
  });

  it("reads the variable the project's plugin server sets, to a file beside its socket", async () => {
    const server = await import("../../pluginserver/state-file");
    const plugin = await import("../../plugins/model-based-round-robin/persistence");
    expect(server.STATE_FILE_ENV).toBe(plugin.STATE_FILE_ENV);
    expect(
      server.stateFileFor({ kongPrefix: "/usr/local/kong", sockName: "model-based-round-robin.sock" }),
    ).toBe("/usr/local/kong/model-based-round-robin.state.json");
  });

  it("takes in a hostile version 1 file: good rows load, far deadlines and huge positions are clamped, a malformed row is skipped alone", async () => {
    const file = join(mkdtempSync(join(tmpdir(), "mbrr-state-")), "state.json");
    const now = Date.now();
    const year3000 = Date.UTC(3000, 0, 1);
    const id = (model: string) => `kept|production|http://${model}.test:80#${model}`;
    writeFileSync(
      file,
      JSON.stringify({
        version: 1,
        suspensions: [
          [id("a"), now + 60_000, "kept|production", "HTTP 429, retry-after: 60"],
          ["kept|staging|http://a.test:80#a", now + 60_000, "kept|staging"],
          [id("b"), year3000, "kept|production", "HTTP 429, no provider hint"],
          ...Array.from({ length: 1000 }, (_, i) => [
            `kept|production|http://junk-${i}.test:80#j`,
            year3000,
            "x",
          ]),
        ],
        suspects: [id("a"), 7],
        streaks: [],
        positions: [
          [
            "kept|production",
            [
              [`http://a.test:80#a`, 1e308],
              [`http://b.test:80#b`, -1e308],
            ],
          ],
        ],
      }),
    );
    const fresh = await freshProcess();
    const problems: string[] = [];
    fresh.onRejected((m) => problems.push(m));
    const kept = fresh.keepStateIn(file, (m) => problems.push(m));
    const config = fresh.normalizeConfig(raw);
    const balancer = fresh.balancerFor(config);
    const record = (model: "a" | "b") =>
      fresh.recordOf({ pluginId: "kept", env: "production", entryKey: `http://${model}.test:80#${model}` });
    expect(record("a")?.suspension?.untilMs).toBe(now + 60_000);
    expect(record("a")?.suspect).toBe(true);
    // on_quota_exceed_suspend_duration's default is the longest this configuration sets.
    const longest = Math.max(
      config.suspendSeconds,
      config.hints.maxSeconds,
      config.billingSeconds,
      config.unreachable.maxSeconds,
    );
    const untilB = record("b")?.suspension?.untilMs ?? 0;
    expect(untilB).toBeGreaterThan(now);
    expect(untilB).toBeLessThanOrEqual(Date.now() + longest * 1000);
    expect(record("a")?.current).toBe(4);
    expect(record("b")?.current).toBe(-4);
    expect(problems).toEqual([
      expect.stringMatching(
        /: skipped 2 row\(s\) of the state file: an entry id \(plugin\|environment\|entry\) that does not parse$/,
      ),
      // One line for the 1,000 rows naming entries the configuration lacks (rate-limited).
      'ignored state from the state file for "kept" "production" "http://junk-0.test:80#j": the plugin\'s configuration has no such entry',
    ]);
    expect(balancer.pick("production").kind).toBe("all-suspended");
    await kept.flush();
    kept.stop();
    // What was written back holds the two configured entries only, clamped.
    const written = JSON.parse(readFileSync(file, "utf8"));
    expect(written.version).toBe(2);
    expect(written.entries.map((row: { entry: string }) => row.entry).sort()).toEqual([
      "http://a.test:80#a",
      "http://b.test:80#b",
    ]);
    expect(statSync(file).size).toBeLessThan(1000);
  });

  it("never leaves a partial file, nor a temporary one, when two processes write the same file at once", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mbrr-state-"));
    const file = join(dir, "state.json");
    const problems: string[] = [];
    // The old and the new plugin server of a reload: same file, and here even the same process id.
    const writers = [];
    for (const id of ["old", "new"]) {
      const p = await freshProcess();
      writers.push({
        kept: p.keepStateIn(file, (m) => problems.push(m)),
        balancer: p.balancerFor(p.normalizeConfig({ ...raw, __plugin_id: id })),
      });
    }
    for (let round = 0; round < 100; round++) {
      for (const { balancer } of writers)
        balancer.suspend("production", "http://a.test:80#a", 1000 + round, Date.now());
      await Promise.all(writers.map(({ kept }) => kept.flush()));
      expect(JSON.parse(readFileSync(file, "utf8")).version).toBe(2);
    }
    for (const { kept } of writers) kept.stop();
    expect(problems).toEqual([]);
    expect(readdirSync(dir)).toEqual(["state.json"]);
  });

  it("reads again what a reload's old server learned after the new one started, but not its rotation positions", async () => {
    const file = join(mkdtempSync(join(tmpdir(), "mbrr-state-")), "state.json");
    const old = await freshProcess();
    const oldKept = old.keepStateIn(file);
    const oldBalancer = old.balancerFor(old.normalizeConfig(raw));
    expect(models(oldBalancer, 2)).toBe("a a");
    await oldKept.flush();

    // The new server starts and reads the file; the old one still finishes a request and learns a suspension.
    const fresh = await freshProcess();
    const freshKept = fresh.keepStateIn(file);
    const freshBalancer = fresh.balancerFor(fresh.normalizeConfig(raw));
    const key = fresh.normalizeConfig(raw).production[0]?.key ?? "";
    const ref = { pluginId: "kept", env: "production" as const, entryKey: key };
    expect(fresh.recordOf(ref)?.suspension).toBeUndefined();
    expect(models(freshBalancer, 1)).toBe("b"); // the rotation goes on from the old server's position
    expect(models(oldBalancer, 1)).toBe("b"); // the old server's own rotation moves too, on its own
    oldBalancer.suspend("production", key, 60_000);
    await oldKept.flush();
    oldKept.stop();

    await vi.waitFor(
      () => expect(fresh.recordOf(ref)?.suspension?.untilMs ?? 0).toBeGreaterThan(Date.now()),
      {
        timeout: 10_000,
        interval: 100,
      },
    );
    // Its position is the new server's own: b was just served here, so a's turn (suspended) passes to b again.
    expect(models(freshBalancer, 2)).toBe("b b");
    freshKept.stop();
  });
});
