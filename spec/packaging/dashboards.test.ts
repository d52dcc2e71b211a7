/**
 * The Grafana dashboard and the Prometheus alert rules (dashboards/) name only metrics the plugin serves: every
 * metric name in their expressions is one the real plugin server's GET /metrics declares (`# TYPE` lines),
 * scraped behind the Kong double after a request. And the alerts the issue asks for are there.
 */
import { readFileSync } from "node:fs";
import { request } from "undici";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import type { MockProvider } from "../../scripts/mock-provider";
import { type Bed, chat, loadPlugin, PLUGIN_DIR, PLUGIN_NAME, useBed } from "../support/harness";

const METRIC = /\b(?:model_based_round_robin|nodejs|process)_[a-z_]+\b/g;

interface Rule {
  alert: string;
  expr: string;
}

const alerts = parse(readFileSync("dashboards/alerts.yml", "utf8")) as { groups: { rules: Rule[] }[] };
const rules = alerts.groups.flatMap((g) => g.rules);
// biome-ignore lint/suspicious/noExplicitAny: Grafana's JSON model, read by path
const dashboard = JSON.parse(readFileSync("dashboards/grafana.json", "utf8")) as any;
const dashboardExprs: string[] = [
  ...dashboard.panels.flatMap((p: { targets: { expr: string }[] }) => p.targets.map((t) => t.expr)),
  ...dashboard.templating.list.flatMap((v: { definition?: string }) => (v.definition ? [v.definition] : [])),
];

const namesIn = (exprs: string[]) => [...new Set(exprs.flatMap((e) => e.match(METRIC) ?? []))].sort();

describe("dashboards/ against the plugin's /metrics", () => {
  let bed: Bed;

  useBed(
    {
      providers: 1,
      kongOptions: {
        pluginServers: [
          {
            name: PLUGIN_NAME,
            pluginsDirectory: PLUGIN_DIR,
            // Run outside Kong, as the image runs it: a Kong-managed server would see no environment.
            supervised: true,
            env: { MODEL_BASED_ROUND_ROBIN_STATUS_LISTEN: "127.0.0.1:0" },
          },
        ],
      },
    },
    (started) => {
      bed = started;
    },
  );

  async function served(): Promise<Set<string>> {
    const [provider] = bed.providers as [MockProvider];
    await loadPlugin(bed.kong, { production_models: [{ model: "m", endpoint: provider.url }] });
    expect((await chat(bed.kong, { model: "x", messages: [] })).status).toBe(200);
    let base: string | undefined;
    for (let i = 0; i < 200 && base === undefined; i++) {
      base = bed.kong.logs
        .map((l) => /status listener on (http:\/\/\S+):/.exec(l.message)?.[1])
        .find(Boolean);
      if (base === undefined) await new Promise((r) => setTimeout(r, 10));
    }
    const res = await request(`${base}/metrics`);
    const text = await res.body.text();
    return new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1] as string));
  }

  it("every metric the alert rules and the dashboard name is one the plugin serves", async () => {
    const names = await served();
    expect(names.has("model_based_round_robin_redis_sharing")).toBe(true);
    const used = namesIn([...rules.map((r) => r.expr), ...dashboardExprs]);
    expect(used.length).toBeGreaterThan(8);
    expect(used.filter((name) => !names.has(name))).toEqual([]);
    // Every plugin metric has a place on the dashboard.
    const mine = [...names].filter((n) => n.startsWith("model_based_round_robin_"));
    expect(mine.filter((name) => !namesIn(dashboardExprs).includes(name))).toEqual([]);
  });
});

describe("the alert rules", () => {
  it("alert on an entry suspended for long, all suspended, Redis sharing down and refusals rising", () => {
    const byName = Object.fromEntries(rules.map((r) => [r.alert, namesIn([r.expr])]));
    expect(byName).toEqual({
      ModelBasedRoundRobinEntrySuspendedLong: ["model_based_round_robin_suspension_remaining_seconds"],
      ModelBasedRoundRobinAllSuspended: ["model_based_round_robin_suspension_remaining_seconds"],
      ModelBasedRoundRobinRedisSharingDown: ["model_based_round_robin_redis_sharing"],
      ModelBasedRoundRobinRefusalsRising: ["model_based_round_robin_refusals_total"],
    });
  });
});
