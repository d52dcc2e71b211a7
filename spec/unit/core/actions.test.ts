/**
 * Operator actions and keyless entries, in the core: a lift ends a suspension and a bench streak through the one
 * writer and is shared as its own change; a drain is an operator suspension (cause `drained`) shared like any
 * other, whose deadline a peer accepts up to the drain bound and no further; a request body is checked field by
 * field; an entry whose key resolved empty is never picked, shows `no_key`, and leaves the all-suspended answer
 * when nothing else is left.
 */
import { describe, expect, it } from "vitest";
import { applyAction, selectEntries } from "../../../plugins/model-based-round-robin/core/actions";
import { balancerFor } from "../../../plugins/model-based-round-robin/core/balancer";
import { keylessEntries, normalizeConfig } from "../../../plugins/model-based-round-robin/core/config";
import {
  MAX_DRAIN_SECONDS,
  recordOf,
  suspensionOf,
} from "../../../plugins/model-based-round-robin/core/process-state";
import { applyShared, type SharedChange } from "../../../plugins/model-based-round-robin/core/shared-state";
import { statusReport } from "../../../plugins/model-based-round-robin/core/status";
import { parseRequest } from "../../../plugins/model-based-round-robin/status/actions";

let ids = 0;
const configOf = (extra: Record<string, unknown> = {}) =>
  normalizeConfig({
    __plugin_id: `actions-${++ids}`,
    production_models: [
      { model: "a", endpoint: "http://a.test/v1" },
      { model: "b", endpoint: "http://b.test" },
    ],
    sandbox_models: [{ model: "a", endpoint: "http://a.test/v1" }],
    unreachable_suspend_duration: 5,
    ...extra,
  });
const A = "http://a.test:80/v1#a";
const B = "http://b.test:80#b";

/** A policy that records what would go to the other nodes. */
function recorder() {
  const shared: SharedChange[] = [];
  return { shared, policy: { share: (c: SharedChange) => shared.push(c), ready: () => undefined } };
}

describe("POST /actions/lift, in the core", () => {
  it("ends a 429 suspension and an unreachable bench with its streak, and shares a lift per entry", () => {
    const config = configOf();
    const { shared, policy } = recorder();
    const balancer = balancerFor(config, policy, 1000);
    balancer.suspend("production", A, 60_000, 1000, "HTTP 429, retry-after: 60");
    expect(balancer.benchUnreachable("production", B, 1000)).toBe(5000);
    expect(balancer.pick("production", 2000).kind).toBe("all-suspended");
    shared.length = 0;

    const outcome = applyAction(
      { pluginId: config.pluginId, environment: "production" },
      { kind: "lift" },
      () => policy,
      2000,
    );
    expect(outcome).toEqual({
      kind: "done",
      entries: [
        {
          plugin_id: config.pluginId,
          environment: "production",
          model: "a",
          endpoint: "http://a.test:80/v1",
          changed: true,
          suspended: false,
        },
        {
          plugin_id: config.pluginId,
          environment: "production",
          model: "b",
          endpoint: "http://b.test:80",
          changed: true,
          suspended: false,
        },
      ],
    });
    expect(shared).toEqual([
      { kind: "lifted", pluginId: config.pluginId, env: "production", entryKey: A },
      { kind: "lifted", pluginId: config.pluginId, env: "production", entryKey: B },
    ]);
    expect(recordOf({ pluginId: config.pluginId, env: "production", entryKey: B })?.streak).toBe(0);
    // The streak is gone: the next bench is the shortest again, not doubled.
    expect(balancer.benchUnreachable("production", B, 3000)).toBe(5000);
    expect(balancer.pick("production", 3000)).toMatchObject({ kind: "picked", entry: { model: "a" } });
  });

  it("is taken in from a peer: the lift ends what this node held", () => {
    const config = configOf();
    balancerFor(config, undefined, 0).suspend("production", A, 60_000, 0, "HTTP 429, retry-after: 60");
    const ref = { pluginId: config.pluginId, env: "production" as const, entryKey: A };
    expect(suspensionOf(ref, 1)).toBeDefined();
    expect(applyShared({ kind: "lifted", ...ref }, 1)).toBe(true);
    expect(suspensionOf(ref, 1)).toBeUndefined();
    expect(applyShared({ kind: "lifted", ...ref }, 1)).toBe(false);
  });

  it("says which plugin or selection is unknown", () => {
    const config = configOf();
    balancerFor(config);
    const { policy } = recorder();
    expect(applyAction({ pluginId: "nope" }, { kind: "lift" }, () => policy).kind).toBe("unknown-plugin");
    expect(applyAction({ pluginId: config.pluginId, model: "zz" }, { kind: "lift" }, () => policy).kind).toBe(
      "no-match",
    );
  });

  it("selects by environment, model and endpoint as /status shows them", () => {
    const config = configOf();
    const keys = (s: Parameters<typeof selectEntries>[1]) =>
      selectEntries(config, s).map(([env, e]) => `${env} ${e.model}`);
    expect(keys({ pluginId: config.pluginId })).toEqual(["production a", "production b", "sandbox a"]);
    expect(keys({ pluginId: config.pluginId, model: "a" })).toEqual(["production a", "sandbox a"]);
    expect(
      keys({ pluginId: config.pluginId, endpoint: "http://a.test:80/v1/", environment: "sandbox" }),
    ).toEqual(["sandbox a"]);
    expect(keys({ pluginId: config.pluginId, endpoint: "http://a.test/v1" })).toEqual([]);
  });
});

describe("POST /actions/drain, in the core", () => {
  it("keeps the entries out for the seconds asked, cause drained, signal operator, shared as a suspension", () => {
    const config = configOf();
    const { shared, policy } = recorder();
    const balancer = balancerFor(config, policy, 0);
    const outcome = applyAction(
      { pluginId: config.pluginId, model: "a", environment: "production" },
      { kind: "drain", seconds: 86_400 },
      () => policy,
      0,
    );
    expect(outcome).toMatchObject({
      kind: "done",
      entries: [
        {
          model: "a",
          changed: true,
          suspended: true,
          until: new Date(86_400_000).toISOString(),
          reason: "drained by an operator for 86400 s",
          cause: "drained",
          signal: "operator",
        },
      ],
    });
    expect(shared).toEqual([
      {
        kind: "suspended",
        pluginId: config.pluginId,
        env: "production",
        entryKey: A,
        untilMs: 86_400_000,
        reason: "drained by an operator for 86400 s",
      },
    ]);
    for (let i = 0; i < 4; i++)
      expect(balancer.pick("production", 1000)).toMatchObject({ entry: { model: "b" } });
    const status = statusReport(1000).plugins[config.pluginId]?.production?.entries[0];
    expect(status).toMatchObject({ suspended: true, cause: "drained", signal: "operator" });
  });

  it("reaches a peer whole (longer than the configuration's longest suspension), and never beyond the drain bound", () => {
    const config = configOf();
    balancerFor(config, undefined, 0);
    const ref = { pluginId: config.pluginId, env: "production" as const, entryKey: A };
    const day = 86_400_000;
    applyShared({ kind: "suspended", ...ref, untilMs: day, reason: "drained by an operator for 86400 s" }, 0);
    expect(suspensionOf(ref, 0)).toMatchObject({ untilMs: day, cause: "drained", source: "peer" });
    const forged = { kind: "suspended", ...ref, untilMs: 1e15, reason: "drained by an operator" } as const;
    applyShared(forged, 0);
    expect(suspensionOf(ref, 0)?.untilMs).toBe(MAX_DRAIN_SECONDS * 1000);
    // Any other reason is still clamped to the longest suspension the configuration can set (3600 s here).
    const other = { ...ref, entryKey: B };
    applyShared({ kind: "suspended", ...other, untilMs: day, reason: "HTTP 429, retry-after: 86400" }, 0);
    expect(suspensionOf(other, 0)?.untilMs).toBe(3_600_000);
  });
});

describe("an action's request body", () => {
  it.each([
    [[], "lift", "body: must be a JSON object"],
    [{}, "lift", "plugin_id: required field missing"],
    [{ plugin_id: 7 }, "lift", "plugin_id: expected a non-empty string"],
    [{ plugin_id: "p", environment: "prod" }, "lift", 'environment: expected "production" or "sandbox"'],
    [{ plugin_id: "p", model: "" }, "lift", "model: expected a non-empty string"],
    [{ plugin_id: "p", endpoint: 1 }, "lift", "endpoint: expected a non-empty string"],
    [{ plugin_id: "p", seconds: 5 }, "lift", "seconds: unknown field"],
    [{ plugin_id: "p", modle: "a" }, "drain", "modle: unknown field"],
    [{ plugin_id: "p" }, "drain", "seconds: required field missing"],
    [{ plugin_id: "p", seconds: 0 }, "drain", "seconds: expected a positive number"],
    [{ plugin_id: "p", seconds: "60" }, "drain", "seconds: expected a positive number"],
    [{ plugin_id: "p", seconds: MAX_DRAIN_SECONDS + 1 }, "drain", "seconds: at most 2592000 (30 days)"],
  ] as const)("refuses %j for %s, naming the field", (body, kind, message) => {
    const parsed = parseRequest(body, kind);
    expect(typeof parsed).toBe("string");
    expect(parsed).toContain(message);
  });

  it("takes a full selection", () => {
    expect(
      parseRequest(
        { plugin_id: "p", environment: "sandbox", model: "m", endpoint: "http://e:80", seconds: 1.5 },
        "drain",
      ),
    ).toEqual({
      selection: { pluginId: "p", environment: "sandbox", model: "m", endpoint: "http://e:80" },
      action: { kind: "drain", seconds: 1.5 },
    });
  });
});

describe("an entry whose key resolved empty", () => {
  const keyless = (value: Record<string, unknown>) =>
    configOf({
      production_models: [
        { model: "a", endpoint: "http://a.test/v1", auth_header_name: "Authorization", ...value },
        { model: "b", endpoint: "http://b.test", auth_header_name: "api-key", auth_header_value: "Bearer k" },
      ],
    });

  it("is never picked, whether the value arrived empty or absent", () => {
    for (const value of [{ auth_header_value: "" }, {}]) {
      const balancer = balancerFor(keyless(value), undefined, 0);
      for (let i = 0; i < 4; i++)
        expect(balancer.pick("production", 0)).toMatchObject({ entry: { model: "b" } });
      expect(balancer.peek("production", 0)).toMatchObject({ entry: { model: "b" } });
      expect(balancer.pickExcept("production", new Set([B]), 0)).toEqual({ kind: "exhausted" });
    }
  });

  it("leaves the all-suspended answer when the others are suspended, advertising when they return", () => {
    const balancer = balancerFor(keyless({ auth_header_value: "" }), undefined, 0);
    balancer.suspend("production", B, 30_000, 0, "HTTP 429, retry-after: 30");
    expect(balancer.pick("production", 0)).toEqual({
      kind: "all-suspended",
      retryAfterMs: 30_000,
      unreachable: false,
    });
    expect(balancer.pick("production", 30_000)).toMatchObject({ kind: "picked", entry: { model: "b" } });
  });

  it("shows no_key in /status with the reference, and names entry and reference (never a value) in one line", () => {
    const config = keyless({
      auth_header_value: "",
      $refs: { auth_header_value: "{vault://env/UNSET_VAR}" },
    });
    balancerFor(config, undefined, 0);
    const [a, b] = statusReport(0).plugins[config.pluginId]?.production?.entries ?? [];
    expect(a).toMatchObject({
      model: "a",
      suspended: true,
      reason: "no_key",
      cause: "no_key",
      key_reference: "{vault://env/UNSET_VAR}",
    });
    expect(b).toMatchObject({ model: "b", suspended: false });
    expect(statusReport(0).plugins[config.pluginId]?.production?.all_suspended).toBe(false);
    const line = keylessEntries(config) ?? "";
    expect(line).toContain("production a at http://a.test:80/v1 (from {vault://env/UNSET_VAR})");
    expect(line).not.toContain("Bearer k");
    expect(line).not.toContain("b.test");
    expect(keylessEntries(configOf())).toBeUndefined();
  });
});
