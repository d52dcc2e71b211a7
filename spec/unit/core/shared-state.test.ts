/**
 * The shared part of an entry's state as this process takes it in from other nodes (applyShared) and hands it
 * out after a Redis outage (sharedStateOf): a deadline only ever moves later, a taken probe is gone, and a
 * plugin's state is its own.
 */
import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { balancerFor } from "../../../plugins/model-based-round-robin/core/balancer";
import { normalizeConfig } from "../../../plugins/model-based-round-robin/core/config";
import type { EntryRef } from "../../../plugins/model-based-round-robin/core/entry-record";
import {
  onStateChange,
  recordCount,
  recordOf,
  resumesAt,
} from "../../../plugins/model-based-round-robin/core/process-state";
import {
  applyShared,
  ownSuspensions,
  type SharedChange,
  sharedStateOf,
} from "../../../plugins/model-based-round-robin/core/shared-state";

const ENTRY = "http://provider.test:80/v1#gpt-4o";
const ODD = "http://provider.test:80/v1#odd|model";
let changes = 0;
onStateChange(() => changes++);

/**
 * A fresh plugin id (the state lives in module-wide maps), configured with ENTRY in production and ENTRY and a
 * model with a `|` in its name in sandbox: what arrives for any other entry is ignored.
 */
const plugin = (pluginId = `plugin-${randomUUID()}`) => {
  const list = [
    { model: "gpt-4o", endpoint: "http://provider.test:80/v1" },
    { model: "odd|model", endpoint: "http://provider.test:80/v1" },
  ];
  balancerFor(
    normalizeConfig({
      __plugin_id: pluginId,
      production_models: list.slice(0, 1),
      sandbox_models: list,
      insufficient_quota_suspend_duration: 3600,
    }),
  );
  return pluginId;
};
const isSuspect = (ref: EntryRef) => recordOf(ref)?.suspect === true;

const suspended = (pluginId: string, untilMs: number, reason = "HTTP 429"): SharedChange => ({
  kind: "suspended",
  pluginId,
  env: "production",
  entryKey: ENTRY,
  untilMs,
  reason,
});

describe("applyShared", () => {
  it("takes in another node's suspension, and only ever extends it", () => {
    const pluginId = plugin();
    const now = Date.now();
    const key = { pluginId, env: "production" as const, entryKey: ENTRY };

    expect(applyShared(suspended(pluginId, now + 30_000), now)).toBe(true);
    expect(resumesAt(key, now)).toBe(now + 30_000);
    // A shorter one (a repeat 429 with a shorter hint, or a late message) changes nothing.
    expect(applyShared(suspended(pluginId, now + 5_000, "HTTP 429, retry-after: 5"), now)).toBe(false);
    expect(applyShared(suspended(pluginId, now + 30_000), now)).toBe(false);
    expect(resumesAt(key, now)).toBe(now + 30_000);
    // A later one moves the deadline.
    expect(applyShared(suspended(pluginId, now + 60_000), now)).toBe(true);
    expect(resumesAt(key, now)).toBe(now + 60_000);
  });

  it("ignores a suspension that is already over", () => {
    const pluginId = plugin();
    const now = Date.now();
    expect(applyShared(suspended(pluginId, now), now)).toBe(false);
    expect(applyShared(suspended(pluginId, now - 1000), now)).toBe(false);
    expect(resumesAt({ pluginId, env: "production", entryKey: ENTRY }, now)).toBeUndefined();
  });

  it("marks an entry for a billing probe, and a probe another node took removes the mark", () => {
    const ref = { pluginId: plugin(), env: "sandbox" as const, entryKey: ENTRY };
    expect(applyShared({ kind: "suspect", ...ref })).toBe(true);
    expect(applyShared({ kind: "suspect", ...ref })).toBe(false);
    expect(isSuspect(ref)).toBe(true);
    expect(applyShared({ kind: "probe-taken", ...ref })).toBe(true);
    expect(isSuspect(ref)).toBe(false);
    expect(applyShared({ kind: "probe-taken", ...ref })).toBe(false);
  });

  it("tells persistence about what changed, and only that", () => {
    const pluginId = plugin();
    const now = Date.now();
    const before = changes;
    applyShared(suspended(pluginId, now + 10_000), now);
    applyShared(suspended(pluginId, now + 1_000), now);
    applyShared({ kind: "probe-taken", pluginId, env: "production", entryKey: ENTRY });
    expect(changes - before).toBe(1);
  });
});

describe("sharedStateOf", () => {
  it("lists the plugin's running suspensions and probe marks, and nothing of another plugin", () => {
    const pluginId = plugin();
    // An id that starts like the first one must not be mistaken for it.
    const other = plugin(`${pluginId}-2`);
    const now = Date.now();
    const model = ODD;
    applyShared(suspended(pluginId, now + 20_000, "retry-after: 20"), now);
    applyShared({
      kind: "suspended",
      pluginId,
      env: "sandbox",
      entryKey: model,
      untilMs: now + 9_000,
      reason: "",
    });
    applyShared({ kind: "suspect", pluginId, env: "sandbox", entryKey: model });
    applyShared(suspended(other, now + 40_000), now);
    applyShared({ kind: "suspect", pluginId: other, env: "production", entryKey: ENTRY });

    expect(sharedStateOf(pluginId, now)).toEqual(
      expect.arrayContaining([
        suspended(pluginId, now + 20_000, "retry-after: 20"),
        { kind: "suspended", pluginId, env: "sandbox", entryKey: model, untilMs: now + 9_000, reason: "" },
        { kind: "suspect", pluginId, env: "sandbox", entryKey: model },
      ]),
    );
    expect(sharedStateOf(pluginId, now)).toHaveLength(3);
    expect(sharedStateOf(other, now)).toEqual([
      suspended(other, now + 40_000),
      { kind: "suspect", pluginId: other, env: "production", entryKey: ENTRY },
    ]);
  });

  it("leaves out suspensions that have ended", () => {
    const pluginId = plugin();
    const now = Date.now();
    applyShared(suspended(pluginId, now + 2_000), now);
    expect(sharedStateOf(pluginId, now + 1_999)).toHaveLength(1);
    expect(sharedStateOf(pluginId, now + 2_000)).toEqual([]);
  });
});

describe("what arrives from Redis is checked by the one writer", () => {
  it("ignores entries and plugins the configuration does not have: nothing is stored, whatever the number", () => {
    const pluginId = plugin();
    const now = Date.now();
    const before = recordCount();
    for (let i = 0; i < 50_000; i++) {
      const entryKey = `http://junk-${i}.test:80/v1#m`;
      expect(applyShared({ ...suspended(pluginId, now + 60_000), entryKey }, now)).toBe(false);
      expect(applyShared({ kind: "suspect", pluginId, env: "production", entryKey })).toBe(false);
    }
    expect(applyShared(suspended(`unknown-${randomUUID()}`, now + 60_000), now)).toBe(false);
    expect(recordCount()).toBe(before);
    expect(sharedStateOf(pluginId, now)).toEqual([]);
  });

  it("clamps a forged far deadline to now + the longest suspension the configuration can set", () => {
    const pluginId = plugin();
    const now = Date.now();
    const year3000 = Date.UTC(3000, 0, 1);
    expect(applyShared(suspended(pluginId, year3000, "HTTP 429, forged"), now)).toBe(true);
    // insufficient_quota_suspend_duration (3600 s) is this configuration's longest.
    expect(resumesAt({ pluginId, env: "production", entryKey: ENTRY }, now)).toBe(now + 3_600_000);
  });

  it("keeps the source: only what this node decided itself is published again after an outage", () => {
    const pluginId = plugin();
    const now = Date.now();
    applyShared(suspended(pluginId, now + 30_000), now);
    expect(ownSuspensions(pluginId, now)).toEqual([]);
    const config = normalizeConfig({
      __plugin_id: pluginId,
      production_models: [{ model: "gpt-4o", endpoint: "http://provider.test:80/v1" }],
      sandbox_models: [
        { model: "gpt-4o", endpoint: "http://provider.test:80/v1" },
        { model: "odd|model", endpoint: "http://provider.test:80/v1" },
      ],
      insufficient_quota_suspend_duration: 3600,
    });
    balancerFor(config).suspend("sandbox", ODD, 20_000, now, "HTTP 429, retry-after: 20");
    expect(ownSuspensions(pluginId, now)).toEqual([
      {
        kind: "suspended",
        pluginId,
        env: "sandbox",
        entryKey: ODD,
        untilMs: now + 20_000,
        reason: "HTTP 429, retry-after: 20",
      },
    ]);
  });
});
