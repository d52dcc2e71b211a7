/**
 * The entry record and its one writer, through the ways state arrives: the state file's rows (version 1 as the
 * plugin wrote it before the entry record, and version 2), and the writer's own checks. Everything the
 * configuration lacks is ignored, every number is clamped to what the configuration could have set.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { balancerFor } from "../../../plugins/model-based-round-robin/core/balancer";
import { normalizeConfig } from "../../../plugins/model-based-round-robin/core/config";
import { entryId, parseEntryId } from "../../../plugins/model-based-round-robin/core/entry-record";
import {
  longestSuspensionMs,
  onRejected,
  recordCount,
  recordOf,
  resetRejectionLog,
  write,
} from "../../../plugins/model-based-round-robin/core/process-state";
import {
  exportState,
  importState,
  MAX_PENDING_ROWS,
} from "../../../plugins/model-based-round-robin/core/snapshot";
import { statusReport } from "../../../plugins/model-based-round-robin/core/status";

const rejections: string[] = [];
onRejected((message) => rejections.push(message));

const models = (pluginId: string, extra: Record<string, unknown> = {}) =>
  normalizeConfig({
    __plugin_id: pluginId,
    production_models: [
      { model: "a", endpoint: "http://a.test", weight: 3 },
      { model: "b", endpoint: "http://b.test", weight: 1 },
      { model: "c", endpoint: "http://c.test", weight: 1 },
    ],
    unreachable_suspend_duration: 5,
    insufficient_quota_suspend_duration: 3600,
    ...extra,
  });
const A = "http://a.test:80#a";
const B = "http://b.test:80#b";
const C = "http://c.test:80#c";

describe("the key vocabulary", () => {
  it("builds one string per entry and reads it back, a `|` in the model name included", () => {
    const ref = {
      pluginId: "9f1c",
      env: "sandbox" as const,
      entryKey: "http://x.test:80/v1#odd|production|m",
    };
    expect(entryId(ref)).toBe("9f1c|sandbox|http://x.test:80/v1#odd|production|m");
    expect(parseEntryId(entryId(ref))).toEqual(ref);
    expect(parseEntryId("no-environment-here")).toBeUndefined();
    expect(parseEntryId("|production|x")).toBeUndefined();
  });
});

describe("the state file's version 1, as the plugin wrote it before the entry record", () => {
  // Written by the previous process-state.ts exportState (two picks, a 429 with retry-after 600 and its
  // billing suspect on a, two unreachable benches in a row on b), at this instant:
  const now = Date.UTC(2030, 0, 1) + 10_000;
  const v1 = JSON.parse(readFileSync(join(__dirname, "../../fixtures/state-file-v1.json"), "utf8"));

  it("is kept until the plugin's configuration arrives, then restores every field, the reason as fields", () => {
    importState(v1, now);
    const balancer = balancerFor(models("v1-plugin"), undefined, now);
    const a = recordOf({ pluginId: "v1-plugin", env: "production", entryKey: A });
    expect(a?.suspension).toEqual({
      untilMs: Date.UTC(2030, 0, 1) + 600_000,
      cause: "http_429",
      signal: "retry-after",
      source: "snapshot",
      text: "HTTP 429, retry-after: 600",
    });
    expect(a?.suspect).toBe(true);
    expect(a?.current).toBe(1);
    const b = recordOf({ pluginId: "v1-plugin", env: "production", entryKey: B });
    expect(b).toMatchObject({
      streak: 2,
      current: -3,
      suspension: { cause: "unreachable", signal: "unreachable" },
    });
    expect(recordOf({ pluginId: "v1-plugin", env: "production", entryKey: C })?.current).toBe(2);
    // a and b are out: c takes every turn; its restored position is where the old process left it.
    const picked = [1, 2].map(() => balancer.pick("production", now));
    expect(picked.map((p) => (p.kind === "picked" ? p.entry.model : p.kind))).toEqual(["c", "c"]);
    expect(balancer.takeProbe("production", A)).toBe(true);
    const shown = statusReport(now).plugins["v1-plugin"]?.production?.entries[0];
    expect(shown).toMatchObject({ suspended: true, reason: "HTTP 429, retry-after: 600", cause: "http_429" });
  });

  it("is written back as version 2: one row per entry, the suspension's reason as fields", () => {
    const rows = exportState(now).entries.filter((row) => row.plugin === "v1-plugin");
    expect(rows).toContainEqual({
      plugin: "v1-plugin",
      env: "production",
      entry: B,
      // Held at 0 while it was out of the rotation (the picks above), as any suspended entry's.
      streak: 2,
      suspension: {
        until: Date.UTC(2030, 0, 1) + 20_000,
        cause: "unreachable",
        signal: "unreachable",
        source: "snapshot",
        text: "unreachable (2 in a row)",
      },
    });
    expect(exportState(now).version).toBe(2);
  });
});

describe("rows that were not written by this configuration", () => {
  it("loads the good rows, clamps far deadlines and huge positions, skips a malformed row alone", () => {
    const now = Date.now();
    const pluginId = `hostile-${now}`;
    const problems: string[] = [];
    const until = now + 60_000;
    importState(
      {
        version: 2,
        entries: [
          {
            plugin: pluginId,
            env: "production",
            entry: A,
            suspension: { until, text: "HTTP 429, retry-after: 60" },
          },
          { plugin: pluginId, env: "production", entry: B, position: 1e308 },
          {
            plugin: pluginId,
            env: "production",
            entry: C,
            suspension: { until: Date.UTC(3000, 0, 1), text: "x" },
          },
          { plugin: pluginId, env: "staging", entry: A, suspect: true },
          42,
          { plugin: pluginId, env: "production", entry: C, streak: 1.5 },
          { plugin: pluginId, env: "production", entry: "http://not-configured.test:80#z", suspect: true },
          { plugin: pluginId, env: "production", entry: A, suspect: true },
        ],
      },
      now,
      (problem) => problems.push(problem),
    );
    expect(problems).toEqual([
      "skipped 1 row(s) of the state file: an environment other than production or sandbox",
      "skipped 1 row(s) of the state file: not an object",
      "skipped 1 row(s) of the state file: a streak that is not a count",
    ]);
    const config = models(pluginId);
    resetRejectionLog();
    const before = rejections.length;
    const balancer = balancerFor(config, undefined, now);
    const record = (entryKey: string) => recordOf({ pluginId, env: "production", entryKey });
    expect(record(A)?.suspension?.untilMs).toBe(until);
    expect(record(A)?.suspect).toBe(true);
    expect(record(B)?.current).toBe(5); // the total weight
    expect(record(C)?.suspension?.untilMs).toBe(now + longestSuspensionMs(config));
    expect(longestSuspensionMs(config)).toBe(3_600_000);
    expect(rejections.slice(before)).toEqual([
      `ignored state from the state file for "${pluginId}" "production" "http://not-configured.test:80#z": the plugin's configuration has no such entry`,
    ]);
    // a and c are out, b alone takes the turns: its place stays within the total weight, and so does the file's.
    const turns = Array.from({ length: 3 }, () => balancer.pick("production", now));
    expect(turns.map((p) => (p.kind === "picked" ? p.entry.model : p.kind))).toEqual(["b", "b", "b"]);
    expect(exportState(now).entries.find((row) => row.plugin === pluginId && row.entry === B)?.position).toBe(
      5,
    );
  });

  it("keeps at most MAX_PENDING_ROWS rows for configurations still to come", () => {
    const entries = Array.from({ length: MAX_PENDING_ROWS + 5_000 }, (_, i) => ({
      plugin: `never-configured-${i}`,
      env: "production",
      entry: A,
      suspect: true,
    }));
    const problems: string[] = [];
    importState({ version: 2, entries }, Date.now(), (p) => problems.push(p));
    expect(problems.some((p) => p.includes(`more than ${MAX_PENDING_ROWS} rows`))).toBe(true);
    expect(exportState().entries.length).toBeLessThanOrEqual(MAX_PENDING_ROWS + recordCount());
  });
});

describe("the one writer", () => {
  it("refuses values of the wrong type with one log line a minute, the count of the others in the next", () => {
    const pluginId = `writer-${Date.now()}`;
    balancerFor(models(pluginId));
    resetRejectionLog();
    const before = rejections.length;
    const ref = { pluginId, env: "production" as const, entryKey: A };
    expect(write(ref, { kind: "position", current: Number.NaN }, "Redis")).toBe(false);
    expect(write(ref, { kind: "streak", inARow: -1 }, "Redis")).toBe(false);
    expect(write(ref, { kind: "suspended", untilMs: Number.NaN, reason: "", source: "peer" }, "Redis")).toBe(
      false,
    );
    expect(rejections.slice(before)).toEqual([
      `ignored state from Redis for "${pluginId}" "production" "${A}": a rotation position that is not a finite number (NaN)`,
    ]);
    expect(write(ref, { kind: "streak", inARow: 1000 }, "Redis")).toBe(true);
    expect(recordOf(ref)?.streak).toBe(64);
  });

  it("keeps a peer's sentence short, and its cause and signal as fields", () => {
    const pluginId = `reason-${Date.now()}`;
    balancerFor(models(pluginId));
    const ref = { pluginId, env: "production" as const, entryKey: C };
    const now = Date.now();
    const reason = `HTTP 429, retry-after: 30${" padding".repeat(100)}`;
    write(ref, { kind: "suspended", untilMs: now + 30_000, reason, source: "peer" }, "Redis", now);
    expect(recordOf(ref)?.suspension).toMatchObject({
      cause: "http_429",
      signal: "retry-after",
      source: "peer",
    });
    expect(recordOf(ref)?.suspension?.text).toHaveLength(200);
  });
});
