/**
 * /status and /metrics name a plugin by its service and route (issue 22), and leave out a configuration Kong has
 * not used for ten minutes unless it holds a running suspension: the registry (core/instances.ts) through the
 * real status report.
 */
import { describe, expect, it } from "vitest";
import { balancerFor } from "../../../plugins/model-based-round-robin/core/balancer";
import { normalizeConfig } from "../../../plugins/model-based-round-robin/core/config";
import {
  isUnused,
  noteInstance,
  noteUse,
  scopeOf,
  UNUSED_MS,
} from "../../../plugins/model-based-round-robin/core/instances";
import { metricSamples, statusReport } from "../../../plugins/model-based-round-robin/core/status";

const T0 = Date.UTC(2026, 0, 1);
let ids = 0;

function configured(nowMs: number, scope: { serviceId?: string; routeId?: string } = {}) {
  const pluginId = `instances-${++ids}`;
  const config = normalizeConfig({
    __plugin_id: pluginId,
    production_models: [{ model: "a", endpoint: "https://one.test/v1" }],
  });
  noteInstance(pluginId, scope, nowMs);
  return { pluginId, config, balancer: balancerFor(config, undefined, nowMs) };
}

describe("names: what an operator knows the plugin by", () => {
  it("shows the ids Kong sent until the names are read, then the names", () => {
    const { pluginId } = configured(T0, { serviceId: "svc-uuid", routeId: "route-uuid" });
    expect(statusReport(T0).plugins[pluginId]).toMatchObject({ service: "svc-uuid", route: "route-uuid" });
    noteUse(pluginId, T0 + 1, { service: "llm", route: "chat" });
    expect(scopeOf(pluginId)).toEqual({ service: "llm", route: "chat" });
    expect(statusReport(T0 + 1).plugins[pluginId]).toMatchObject({ service: "llm", route: "chat" });
    const info = metricSamples(T0 + 1).plugins.find((s) => s.labels.plugin_id === pluginId);
    expect(info).toEqual({ labels: { plugin_id: pluginId, service: "llm", route: "chat" }, value: 1 });
  });

  it("names no service or route for a global plugin", () => {
    const { pluginId } = configured(T0);
    noteUse(pluginId, T0 + 1, {});
    const plugin = statusReport(T0 + 1).plugins[pluginId];
    expect(plugin).toBeDefined();
    expect(plugin?.service).toBeUndefined();
    expect(plugin?.route).toBeUndefined();
    expect(metricSamples(T0 + 1).plugins.find((s) => s.labels.plugin_id === pluginId)?.labels).toEqual({
      plugin_id: pluginId,
      service: "",
      route: "",
    });
  });
});

describe("only configurations Kong still uses", () => {
  it(`drops one unused for ${UNUSED_MS / 60_000} minutes from /status and /metrics; a request brings it back`, () => {
    const { pluginId, balancer } = configured(T0, { serviceId: "s" });
    balancer.pick("production", T0);
    const later = T0 + UNUSED_MS - 1;
    expect(statusReport(later).plugins[pluginId]).toBeDefined();
    expect(isUnused(pluginId, T0 + UNUSED_MS)).toBe(true);
    expect(statusReport(T0 + UNUSED_MS).plugins[pluginId]).toBeUndefined();
    const samples = metricSamples(T0 + UNUSED_MS);
    const all = Object.values(samples).flat();
    expect(all.filter((s) => s.labels.plugin_id === pluginId)).toEqual([]);

    noteUse(pluginId, T0 + UNUSED_MS + 5);
    expect(statusReport(T0 + UNUSED_MS + 5).plugins[pluginId]?.production?.entries[0]).toMatchObject({
      model: "a",
      picks: 1,
    });
  });

  it("keeps one that holds a running suspension, until the suspension ends", () => {
    const { pluginId, config, balancer } = configured(T0);
    const key = config.production[0]?.key ?? "";
    balancer.suspend("production", key, UNUSED_MS + 60_000, T0, "HTTP 429, retry-after: 660");
    const idle = T0 + UNUSED_MS + 1000;
    expect(statusReport(idle).plugins[pluginId]?.production?.entries[0]).toMatchObject({ suspended: true });
    expect(statusReport(T0 + UNUSED_MS + 60_000).plugins[pluginId]).toBeUndefined();
  });

  it("keeps a configuration it never heard of (started before this registry knew it)", () => {
    expect(isUnused("never-seen", T0 + 10 * UNUSED_MS)).toBe(false);
  });
});
