/**
 * GET /metrics: the core's figures (core/status.ts metricSamples) in Prometheus' text format through prom-client,
 * read afresh at every scrape, plus prom-client's default process metrics (CPU, memory, heap, event loop lag)
 * of the plugin server.
 */
import { Counter, collectDefaultMetrics, Gauge, Registry } from "prom-client";
import { type MetricSamples, metricSamples, type Sample } from "../core/status";
import { sharingHealth } from "../policies";

const PREFIX = "model_based_round_robin_";
const ENTRY = ["plugin_id", "environment", "model", "endpoint"];
const GROUP = ["plugin_id", "environment"];

export interface MetricsEndpoint {
  contentType: string;
  render(): Promise<string>;
}

export function metricsEndpoint(now: () => number = Date.now): MetricsEndpoint {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  // One reading of the core per scrape, shared by every metric's collect().
  let samples: MetricSamples | undefined;
  const counter = (name: string, help: string, labelNames: string[], pick: (s: MetricSamples) => Sample[]) =>
    new Counter({
      name: PREFIX + name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        for (const { labels, value } of pick(samples ?? metricSamples(now()))) this.inc(labels, value);
      },
    });
  const gauge = (name: string, help: string, labelNames: string[], pick: (s: MetricSamples) => Sample[]) =>
    new Gauge({
      name: PREFIX + name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        for (const { labels, value } of pick(samples ?? metricSamples(now()))) this.set(labels, value);
      },
    });
  gauge(
    "plugin_info",
    "1 per plugin configuration shown: the service and route it is bound to, by name (id where Kong has none; empty when global). Join on plugin_id.",
    ["plugin_id", "service", "route"],
    (s) => s.plugins,
  );
  counter("picks_total", "Turns of the rotation given to the entry.", ENTRY, (s) => s.picks);
  counter(
    "suspensions_total",
    "Suspensions this plugin server decided for the entry, by cause (http_<status>, quota_spent, insufficient_quota, unreachable) and the signal that set their length.",
    [...ENTRY, "cause", "signal"],
    (s) => s.suspensions,
  );
  gauge("suspended_entries", "Entries of the environment suspended now.", GROUP, (s) => s.suspendedEntries);
  gauge(
    "suspension_remaining_seconds",
    "Seconds until the entry returns to the rotation; 0 when it is in it.",
    ENTRY,
    (s) => s.suspendedSecondsLeft,
  );
  counter(
    "all_suspended_total",
    "Requests answered with all_suspended_status because every entry of the environment was suspended.",
    GROUP,
    (s) => s.allSuspended,
  );
  counter(
    "self_proxied_total",
    "Requests the plugin sent to the provider itself to fail over within them (failover_attempts > 0).",
    GROUP,
    (s) => s.selfProxied,
  );
  counter(
    "failovers_total",
    "Attempts after the first of the requests the plugin sent itself: moves to another entry within a request.",
    GROUP,
    (s) => s.failovers,
  );
  counter(
    "refusals_total",
    "Answers the plugin gave itself instead of proxying, by the error code in the body.",
    ["plugin_id", "reason"],
    (s) => s.refusals,
  );
  gauge(
    "redis_sharing",
    "1 while the state is shared through this Redis (policy redis), 0 during an outage.",
    ["redis"],
    () =>
      sharingHealth().redis.map((link) => ({ labels: { redis: link.redis }, value: link.sharing ? 1 : 0 })),
  );
  return {
    contentType: registry.contentType,
    async render() {
      samples = metricSamples(now());
      try {
        return await registry.metrics();
      } finally {
        samples = undefined;
      }
    },
  };
}
