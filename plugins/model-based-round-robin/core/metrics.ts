/**
 * What this plugin server counted since it started, as plain data: turns of the rotation (picks), suspensions
 * it decided, all-suspended answers and refusals, plus the configurations it serves, so that the status
 * listener (../status) can show every entry, picked or not. The balancer and the handler count; nothing here
 * does I/O or knows of Kong or of the Prometheus format. Counting costs a few map lookups per request.
 */
import type { Environment, RoundRobinConfig } from "./config";
import { explainReason } from "./signals";

interface EnvironmentCounts {
  /** Per entry key: turns of the rotation given to it. */
  picks: Map<string, number>;
  /** Per entry key, per "cause signal": suspensions this process decided (the deadline moved). */
  suspensions: Map<string, Map<string, number>>;
  allSuspended: number;
  /** Requests the plugin sent itself to fail over within them (failover_attempts > 0). */
  selfProxied: number;
  /** Attempts after the first of those requests: each a move to another entry. */
  failovers: number;
}

export interface PluginCounts {
  production: EnvironmentCounts;
  sandbox: EnvironmentCounts;
  /** Per error code of the answer (`all_models_suspended`, `invalid_body`, ...). */
  refusals: Map<string, number>;
}

/** A configuration this process serves, by plugin id: the latest one an instance was started with. */
export interface KnownConfig {
  config: RoundRobinConfig;
  /** When an instance of it was last started (ms since epoch). */
  seenMs: number;
}

const counts = new Map<string, PluginCounts>();
const known = new Map<string, KnownConfig>();

function emptyEnvironment(): EnvironmentCounts {
  return { picks: new Map(), suspensions: new Map(), allSuspended: 0, selfProxied: 0, failovers: 0 };
}

function countsOf(pluginId: string): PluginCounts {
  let mine = counts.get(pluginId);
  if (mine === undefined) {
    mine = { production: emptyEnvironment(), sandbox: emptyEnvironment(), refusals: new Map() };
    counts.set(pluginId, mine);
  }
  return mine;
}

function add<K>(map: Map<K, number>, key: K, by = 1): void {
  map.set(key, (map.get(key) ?? 0) + by);
}

export function countPick(pluginId: string, env: Environment, entryKey: string): void {
  add(countsOf(pluginId)[env].picks, entryKey);
}

/** A suspension this process decided, filed by what caused it and which signal set its length. */
export function countSuspension(pluginId: string, env: Environment, entryKey: string, reason: string): void {
  const { cause, signal } = explainReason(reason);
  const byEntry = countsOf(pluginId)[env].suspensions;
  const mine = byEntry.get(entryKey) ?? new Map<string, number>();
  byEntry.set(entryKey, mine);
  add(mine, `${cause} ${signal}`);
}

export function countAllSuspended(pluginId: string, env: Environment): void {
  countsOf(pluginId)[env].allSuspended++;
}

/** A request the plugin sent itself, and how many attempts it took (1 when the first entry answered). */
export function countSelfProxied(pluginId: string, env: Environment, attempts: number): void {
  const mine = countsOf(pluginId)[env];
  mine.selfProxied++;
  mine.failovers += Math.max(0, attempts - 1);
}

export function countRefusal(pluginId: string, code: string): void {
  add(countsOf(pluginId).refusals, code);
}

/** An instance of this configuration started: it is the one /status describes for its plugin id. */
export function registerConfig(config: RoundRobinConfig, nowMs: number): void {
  known.set(config.pluginId, { config, seenMs: nowMs });
}

/**
 * Kong never says that a plugin was deleted: a configuration no instance was started for in `idleMs` and that
 * has no rotation left (`inUse` is false) is forgotten with its counts.
 */
export function forgetIdleConfigs(nowMs: number, idleMs: number, inUse: (pluginId: string) => boolean): void {
  for (const [pluginId, entry] of known) {
    if (nowMs - entry.seenMs < idleMs || inUse(pluginId)) continue;
    known.delete(pluginId);
    counts.delete(pluginId);
  }
}

export function knownConfigs(): ReadonlyMap<string, KnownConfig> {
  return known;
}

const NO_COUNTS: PluginCounts = {
  production: emptyEnvironment(),
  sandbox: emptyEnvironment(),
  refusals: new Map(),
};

export function pluginCounts(pluginId: string): PluginCounts {
  return counts.get(pluginId) ?? NO_COUNTS;
}

/** Every plugin id anything was counted for (refusals of a configuration the plugin cannot use included). */
export function countedPlugins(): string[] {
  return [...counts.keys()];
}
