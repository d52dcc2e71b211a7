/**
 * The shared part of an entry's state as this process takes it in from other nodes (applyShared) and hands it
 * out after a Redis outage (sharedStateOf): a deadline only ever moves later, a taken probe is gone, and a
 * plugin's state is its own.
 */
import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  onStateChange,
  suspects,
  suspensions,
} from "../../../plugins/model-based-round-robin/core/process-state";
import {
  applyShared,
  localKey,
  type SharedChange,
  sharedStateOf,
} from "../../../plugins/model-based-round-robin/core/shared-state";

const ENTRY = "http://provider.test:80/v1#gpt-4o";
let changes = 0;
onStateChange(() => changes++);

/** A fresh plugin id: the state lives in module-wide maps. */
const plugin = () => `plugin-${randomUUID()}`;

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
    const key = localKey({ pluginId, env: "production", entryKey: ENTRY });

    expect(applyShared(suspended(pluginId, now + 30_000), now)).toBe(true);
    expect(suspensions.resumesAt(key, now)).toBe(now + 30_000);
    // A shorter one (a repeat 429 with a shorter hint, or a late message) changes nothing.
    expect(applyShared(suspended(pluginId, now + 5_000, "HTTP 429, retry-after: 5"), now)).toBe(false);
    expect(applyShared(suspended(pluginId, now + 30_000), now)).toBe(false);
    expect(suspensions.resumesAt(key, now)).toBe(now + 30_000);
    // A later one moves the deadline.
    expect(applyShared(suspended(pluginId, now + 60_000), now)).toBe(true);
    expect(suspensions.resumesAt(key, now)).toBe(now + 60_000);
  });

  it("ignores a suspension that is already over", () => {
    const pluginId = plugin();
    const now = Date.now();
    expect(applyShared(suspended(pluginId, now), now)).toBe(false);
    expect(applyShared(suspended(pluginId, now - 1000), now)).toBe(false);
    expect(suspensions.isSuspended(localKey({ pluginId, env: "production", entryKey: ENTRY }), now)).toBe(
      false,
    );
  });

  it("marks an entry for a billing probe, and a probe another node took removes the mark", () => {
    const ref = { pluginId: plugin(), env: "sandbox" as const, entryKey: ENTRY };
    expect(applyShared({ kind: "suspect", ...ref })).toBe(true);
    expect(applyShared({ kind: "suspect", ...ref })).toBe(false);
    expect(suspects.has(localKey(ref))).toBe(true);
    expect(applyShared({ kind: "probe-taken", ...ref })).toBe(true);
    expect(suspects.has(localKey(ref))).toBe(false);
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
    const other = `${pluginId}-2`;
    const now = Date.now();
    const model = "http://provider.test:80/v1#odd|model";
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
