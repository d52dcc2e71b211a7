/**
 * The operator's view of this plugin server, computed from its memory at one instant: for every plugin
 * configuration and environment, each entry with its weight, picks, and whether, until when and why it is
 * suspended; and the same figures as metric samples. Pure: ../status renders it as JSON and Prometheus text.
 *
 * Nothing secret is in it: an entry is shown by its model and endpoint (Kong's schema refuses credentials in an
 * endpoint) and the *name* of its auth header, never the header's value; Redis settings are not shown.
 */
import type { Entry, Environment } from "./config";
import { runningSuspension, type SuspensionRecord } from "./entry-record";
import { isUnused, scopeOf } from "./instances";
import { countedPlugins, knownConfigs, type PluginCounts, pluginCounts } from "./metrics";
import { records, suspensionOf } from "./process-state";

export interface EntryStatus {
  model: string;
  /** scheme://host:port/path, as the entry's state is keyed. */
  endpoint: string;
  /** The header the entry's key is sent in; its value is never shown. */
  auth_header_name?: string;
  weight: number;
  /** Turns of the rotation given to this entry since the plugin server started. */
  picks: number;
  /** Suspensions this plugin server decided for this entry since it started. */
  suspensions: number;
  suspended: boolean;
  /** While suspended: when it returns (ISO 8601), how long that is from now, why, and what set the length. */
  until?: string;
  ms_left?: number;
  reason?: string;
  cause?: string;
  signal?: string;
  /** With reason `no_key`: the vault reference auth_header_value was resolved from (never a value). */
  key_reference?: string;
}

export interface EnvironmentStatus {
  entries: EntryStatus[];
  /** Every entry is suspended now: requests get the all-suspended answer. */
  all_suspended: boolean;
  /** All-suspended answers given since the plugin server started. */
  all_suspended_answers: number;
  /** Requests the plugin sent itself to fail over within them (failover_attempts > 0), since it started. */
  self_proxied_requests: number;
  /** Attempts after the first of those requests: moves to another entry within a request. */
  failovers: number;
}

export interface PluginStatus {
  /** The service and route the plugin is bound to, by name (by id where Kong has no name); absent when global. */
  service?: string;
  route?: string;
  policy: "local" | "redis";
  production?: EnvironmentStatus;
  sandbox?: EnvironmentStatus;
  /** Answers the plugin gave itself since the plugin server started, by error code. */
  refusals: Record<string, number>;
}

export interface StatusReport {
  now: string;
  plugins: Record<string, PluginStatus>;
}

export function statusReport(nowMs: number): StatusReport {
  const plugins: Record<string, PluginStatus> = {};
  // A configuration Kong no longer uses drops out, unless it holds a running suspension.
  const suspending = (pluginId: string) =>
    [...records(pluginId)].some((record) => runningSuspension(record, nowMs) !== undefined);
  const shown = (pluginId: string) => !isUnused(pluginId, nowMs) || suspending(pluginId);
  for (const [pluginId, { config }] of knownConfigs()) {
    if (!shown(pluginId)) continue;
    const counts = pluginCounts(pluginId);
    const lists: [Environment, Entry[] | undefined][] = [
      ["production", config.production],
      ["sandbox", config.sandbox],
    ];
    const plugin: Partial<PluginStatus> = { policy: config.sharing.policy };
    for (const [env, entries] of lists) {
      if (entries !== undefined) {
        plugin[env] = environmentStatus(entries, counts[env], nowMs, (entry) =>
          suspensionOf({ pluginId, env, entryKey: entry.key }, nowMs),
        );
      }
    }
    plugins[pluginId] = {
      ...scopeOf(pluginId),
      ...plugin,
      policy: config.sharing.policy,
      refusals: Object.fromEntries(counts.refusals),
    };
  }
  // A configuration the plugin cannot use starts no balancer, yet its refusals are worth seeing.
  for (const pluginId of countedPlugins()) {
    if (plugins[pluginId] !== undefined || !shown(pluginId)) continue;
    plugins[pluginId] = {
      ...scopeOf(pluginId),
      policy: "local",
      refusals: Object.fromEntries(pluginCounts(pluginId).refusals),
    };
  }
  return { now: new Date(nowMs).toISOString(), plugins };
}

function environmentStatus(
  entries: Entry[],
  mine: PluginCounts[Environment],
  nowMs: number,
  suspensionOf: (entry: Entry) => SuspensionRecord | undefined,
): EnvironmentStatus {
  const out = entries.map((entry): EntryStatus => {
    const status: EntryStatus = {
      model: entry.model,
      endpoint: endpointOf(entry),
      ...(entry.authHeader && { auth_header_name: entry.authHeader.name }),
      weight: entry.weight,
      picks: mine.picks.get(entry.key) ?? 0,
      suspensions: sum(mine.suspensions.get(entry.key)),
      suspended: false,
    };
    const running = suspensionOf(entry);
    if (entry.noKey !== undefined) {
      // Not used while this configuration lasts: its key resolved empty (config.ts noKey).
      return {
        ...status,
        suspended: true,
        reason: "no_key",
        cause: "no_key",
        signal: "configuration",
        ...(entry.noKey.reference !== undefined && { key_reference: entry.noKey.reference }),
      };
    }
    if (running === undefined) return status;
    const { untilMs, text, cause, signal } = running;
    return {
      ...status,
      suspended: true,
      until: new Date(untilMs).toISOString(),
      ms_left: untilMs - nowMs,
      reason: text,
      cause,
      signal,
    };
  });
  return {
    entries: out,
    all_suspended: out.length > 0 && out.every((entry) => entry.suspended),
    all_suspended_answers: mine.allSuspended,
    self_proxied_requests: mine.selfProxied,
    failovers: mine.failovers,
  };
}

/** The endpoint part of an entry's key, the way the entry's state is keyed (no credentials can be in it). */
export function endpointOf(entry: Entry): string {
  const host = entry.host.includes(":") ? `[${entry.host}]` : entry.host;
  return `${entry.scheme}://${host}:${entry.port}${entry.basePath}`;
}

function sum(byKind: Map<string, number> | undefined): number {
  let total = 0;
  for (const n of byKind?.values() ?? []) total += n;
  return total;
}

/** One sample of a metric: its labels and value. */
export interface Sample {
  labels: Record<string, string>;
  value: number;
}

export interface MetricSamples {
  /** One per plugin shown, valued 1: its service and route (names), for joining on plugin_id. */
  plugins: Sample[];
  picks: Sample[];
  suspensions: Sample[];
  suspendedEntries: Sample[];
  suspendedSecondsLeft: Sample[];
  allSuspended: Sample[];
  selfProxied: Sample[];
  failovers: Sample[];
  refusals: Sample[];
}

/** The same figures as /status, labelled for Prometheus (cause and signal: short fixed vocabularies). */
export function metricSamples(nowMs: number): MetricSamples {
  const out: MetricSamples = {
    plugins: [],
    picks: [],
    suspensions: [],
    suspendedEntries: [],
    suspendedSecondsLeft: [],
    allSuspended: [],
    selfProxied: [],
    failovers: [],
    refusals: [],
  };
  for (const [pluginId, plugin] of Object.entries(statusReport(nowMs).plugins)) {
    out.plugins.push({
      labels: { plugin_id: pluginId, service: plugin.service ?? "", route: plugin.route ?? "" },
      value: 1,
    });
    for (const [code, n] of Object.entries(plugin.refusals)) {
      out.refusals.push({ labels: { plugin_id: pluginId, reason: code }, value: n });
    }
    for (const env of ["production", "sandbox"] as const) {
      const status = plugin[env];
      if (status === undefined) continue;
      const group = { plugin_id: pluginId, environment: env };
      out.allSuspended.push({ labels: group, value: status.all_suspended_answers });
      out.selfProxied.push({ labels: group, value: status.self_proxied_requests });
      out.failovers.push({ labels: group, value: status.failovers });
      out.suspendedEntries.push({
        labels: group,
        value: status.entries.filter((entry) => entry.suspended).length,
      });
      const entries = knownConfigs().get(pluginId)?.config[env] ?? [];
      const byKind = pluginCounts(pluginId)[env].suspensions;
      status.entries.forEach((entry, i) => {
        const labels = { ...group, model: entry.model, endpoint: entry.endpoint };
        out.picks.push({ labels, value: entry.picks });
        out.suspendedSecondsLeft.push({ labels, value: (entry.ms_left ?? 0) / 1000 });
        for (const [kind, n] of byKind.get(entries[i]?.key ?? "") ?? []) {
          const [cause = "", signal = ""] = kind.split(" ");
          out.suspensions.push({ labels: { ...labels, cause, signal }, value: n });
        }
      });
    }
  }
  return out;
}
