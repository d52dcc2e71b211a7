import { describe, expect, it } from "vitest";
import { balancerFor } from "../../../plugins/model-based-round-robin/core/balancer";
import { normalizeConfig } from "../../../plugins/model-based-round-robin/core/config";
import { countRefusal } from "../../../plugins/model-based-round-robin/core/metrics";
import { explainReason, suspensionFromResponse } from "../../../plugins/model-based-round-robin/core/signals";
import { metricSamples, statusReport } from "../../../plugins/model-based-round-robin/core/status";

let ids = 0;
function setup(extra: Record<string, unknown> = {}) {
  const config = normalizeConfig({
    __plugin_id: `status-${++ids}`,
    production_models: [
      {
        model: "a",
        endpoint: "https://one.test/v1",
        weight: 2,
        auth_header_name: "api-key",
        auth_header_value: "sk-never-shown",
      },
      { model: "b", endpoint: "http://[::1]:8080" },
    ],
    ...extra,
  });
  return { config, balancer: balancerFor(config, undefined, 0) };
}

describe("explainReason: the cause and the signal behind every reason the plugin writes", () => {
  const signalConfig = normalizeConfig({
    production_models: [{ model: "a", endpoint: "http://e.test" }],
    min_suspend_duration: 0,
    proactive_suspension: true,
  });
  const reasonFor = (status: number, headers: Record<string, string>) =>
    suspensionFromResponse(status, headers, signalConfig, 0)?.reason ?? "";

  it.each([
    [429, { "retry-after-ms": "1500" }, "http_429", "retry-after-ms"],
    [429, { "x-ms-retry-after-ms": "1500" }, "http_429", "x-ms-retry-after-ms"],
    [429, { "retry-after": "30" }, "http_429", "retry-after"],
    [429, { "retry-after": "Wed, 21 Oct 2015 07:28:00 GMT" }, "http_429", "retry-after"],
    [
      429,
      { "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "6m0s" },
      "http_429",
      "x-ratelimit-reset-requests",
    ],
    [
      429,
      { "x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "1s" },
      "http_429",
      "x-ratelimit-reset-tokens",
    ],
    [
      429,
      {
        "anthropic-ratelimit-requests-remaining": "0",
        "anthropic-ratelimit-requests-reset": "2100-01-01T00:00:00Z",
      },
      "http_429",
      "anthropic-ratelimit-requests-reset",
    ],
    [429, {}, "http_429", "default"],
    [
      200,
      { "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "2s" },
      "quota_spent",
      "x-ratelimit-reset-requests",
    ],
  ])("HTTP %i with %j: %s, %s", (status, headers, cause, signal) => {
    expect(explainReason(reasonFor(status, headers))).toEqual({ cause, signal });
  });

  it("reads the handler's billing reason, the balancer's unreachable one, and marks anything else unknown", () => {
    expect(explainReason("HTTP 429 insufficient_quota: billing exhausted")).toEqual({
      cause: "insufficient_quota",
      signal: "insufficient_quota",
    });
    expect(explainReason("unreachable (3 in a row)")).toEqual({
      cause: "unreachable",
      signal: "unreachable",
    });
    expect(explainReason("")).toEqual({ cause: "unknown", signal: "unknown" });
  });

  it("reads the unreachable reason the balancer really writes", () => {
    const { config, balancer } = setup();
    balancer.benchUnreachable("production", config.production[1]?.key ?? "", 1000);
    const entry = statusReport(1000).plugins[config.pluginId]?.production?.entries[1];
    expect(entry).toMatchObject({
      reason: "unreachable (1 in a row)",
      cause: "unreachable",
      signal: "unreachable",
    });
  });
});

describe("statusReport: every entry of every configuration, with its figures", () => {
  it("lists a configuration as soon as its balancer exists, before any pick", () => {
    const { config } = setup();
    expect(statusReport(0).plugins[config.pluginId]).toEqual({
      policy: "local",
      production: {
        entries: [
          {
            model: "a",
            endpoint: "https://one.test:443/v1",
            auth_header_name: "api-key",
            weight: 2,
            picks: 0,
            suspensions: 0,
            suspended: false,
          },
          {
            model: "b",
            endpoint: "http://[::1]:8080",
            weight: 1,
            picks: 0,
            suspensions: 0,
            suspended: false,
          },
        ],
        all_suspended: false,
        all_suspended_answers: 0,
        self_proxied_requests: 0,
        failovers: 0,
      },
      refusals: {},
    });
  });

  it("counts picks (not peeks), suspensions, all-suspended answers and refusals; shows until when and why", () => {
    const { config, balancer } = setup();
    const [a, b] = config.production.map((entry) => entry.key) as [string, string];
    for (let i = 0; i < 3; i++) balancer.pick("production", 1000);
    balancer.peek("production", 1000);
    balancer.suspend("production", a, 30_000, 1000, "HTTP 429, retry-after: 30");
    balancer.suspend("production", a, 10_000, 1000, "HTTP 429, retry-after: 10"); // shorter: changes nothing
    balancer.suspend("production", b, 60_000, 1000, "HTTP 429, no provider hint");
    expect(balancer.pick("production", 2000).kind).toBe("all-suspended");
    countRefusal(config.pluginId, "all_models_suspended");

    const plugin = statusReport(11_000).plugins[config.pluginId];
    expect(plugin?.refusals).toEqual({ all_models_suspended: 1 });
    expect(plugin?.production?.all_suspended).toBe(true);
    expect(plugin?.production?.all_suspended_answers).toBe(1);
    expect(plugin?.production?.entries).toEqual([
      expect.objectContaining({
        model: "a",
        picks: 2,
        suspensions: 1,
        suspended: true,
        until: new Date(31_000).toISOString(),
        ms_left: 20_000,
        reason: "HTTP 429, retry-after: 30",
        cause: "http_429",
        signal: "retry-after",
      }),
      expect.objectContaining({ model: "b", picks: 1, ms_left: 50_000, signal: "default" }),
    ]);
    expect(JSON.stringify(statusReport(11_000))).not.toContain("sk-never-shown");

    const samples = metricSamples(11_000);
    const mine = (list: { labels: Record<string, string>; value: number }[]) =>
      list.filter((s) => s.labels.plugin_id === config.pluginId);
    expect(mine(samples.picks).map((s) => [s.labels.model, s.value])).toEqual([
      ["a", 2],
      ["b", 1],
    ]);
    expect(mine(samples.suspensions)).toEqual([
      {
        labels: {
          plugin_id: config.pluginId,
          environment: "production",
          model: "a",
          endpoint: "https://one.test:443/v1",
          cause: "http_429",
          signal: "retry-after",
        },
        value: 1,
      },
      expect.objectContaining({
        labels: expect.objectContaining({ model: "b", signal: "default" }),
        value: 1,
      }),
    ]);
    expect(mine(samples.suspendedEntries)).toEqual([
      { labels: { plugin_id: config.pluginId, environment: "production" }, value: 2 },
    ]);
    expect(mine(samples.suspendedSecondsLeft).map((s) => s.value)).toEqual([20, 50]);
    expect(mine(samples.allSuspended).map((s) => s.value)).toEqual([1]);
    expect(mine(samples.refusals)).toEqual([
      { labels: { plugin_id: config.pluginId, reason: "all_models_suspended" }, value: 1 },
    ]);
  });

  it("keeps production and sandbox apart", () => {
    const { config, balancer } = setup({
      sandbox_models: [{ model: "s", endpoint: "http://sbx.test" }],
      sandbox_hosts: ["sbx.test"],
    });
    balancer.pick("sandbox", 0);
    const plugin = statusReport(0).plugins[config.pluginId];
    expect(plugin?.sandbox?.entries).toEqual([expect.objectContaining({ model: "s", picks: 1 })]);
    expect(plugin?.production?.entries.map((e) => e.picks)).toEqual([0, 0]);
  });

  it("shows the refusals of a configuration the plugin cannot use (it has no balancer)", () => {
    countRefusal("broken-plugin", "gateway_misconfigured");
    expect(statusReport(0).plugins["broken-plugin"]).toEqual({
      policy: "local",
      refusals: { gateway_misconfigured: 1 },
    });
  });
});
