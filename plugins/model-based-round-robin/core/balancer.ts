/**
 * Rotation and suspension state for one plugin configuration, kept outside the plugin instance: Kong starts a
 * new instance on every configuration reload, so the state is looked up by the plugin's id (`__plugin_id`) and
 * environment. When the model list changes, entries that remain keep their place and suspension, new ones
 * start level (current weight 0), removed ones are dropped: no burst either way.
 */
import type { Entry, Environment, RoundRobinConfig } from "./config";
import { countAllSuspended, countPick, countSuspension, forgetIdleConfigs, registerConfig } from "./metrics";
import {
  changed,
  moved,
  type Rotation,
  restoredPositions,
  rotations,
  streaks,
  suspects,
  suspensions,
} from "./process-state";
import { peekSmooth, pickSmooth } from "./selection";
import { LOCAL_POLICY, type StatePolicy } from "./shared-state";

/** Kong never tells a plugin server that a plugin was deleted; state idle this long is dropped. */
const IDLE_STATE_MS = 24 * 3600 * 1000;
const always = () => true;

/** The outcome of one turn of the rotation. */
export type Selection =
  | { kind: "picked"; entry: Entry }
  | { kind: "all-suspended"; retryAfterMs: number }
  | { kind: "no-list" };

export interface Balancer {
  pick(env: Environment, nowMs?: number): Selection;
  /**
   * A failover turn: the next entry of the rotation that is neither suspended nor in `tried`. `exhausted` when
   * none is left but not every entry is suspended (the untried ones are; or every entry was tried).
   */
  pickExcept(env: Environment, tried: ReadonlySet<string>, nowMs?: number): Selection | { kind: "exhausted" };
  /** The entry the next pick would choose, without taking its turn. */
  peek(env: Environment, nowMs?: number): Selection;
  /** Takes the entry out of rotation for durationMs (never shortening a running suspension), for `reason`. */
  suspend(env: Environment, entryKey: string, durationMs: number, nowMs?: number, reason?: string): void;
  /** The entry's last answer suspended it: the next request that can be proxied buffered should probe it. */
  markSuspect(env: Environment, entryKey: string): void;
  /** True once per suspect entry: the caller proxies this request buffered to read a billing error. */
  takeProbe(env: Environment, entryKey: string): boolean;
  /**
   * Kong could not reach the entry or it timed out: bench it for the configured time, doubled for each bench in
   * a row (up to the maximum). Failures of requests already in flight while it is benched do not count again.
   * Returns the bench in ms, or 0 when nothing was benched.
   */
  benchUnreachable(env: Environment, entryKey: string, nowMs?: number): number;
  /** The entry answered: its next failure starts from the shortest bench again. */
  reached(env: Environment, entryKey: string): void;
  /** Some entry of this plugin has failures in a row: only then is an answer worth telling apart. */
  hasStreaks(): boolean;
}

/** `policy` is where shared changes go besides this process (policy `redis`: the other nodes). */
export function balancerFor(
  config: RoundRobinConfig,
  policy: StatePolicy = LOCAL_POLICY,
  nowMs = Date.now(),
): Balancer {
  // Kong creates instances on configuration changes only: a cheap moment to forget deleted plugins.
  forgetIdle(nowMs);
  registerConfig(config, nowMs);
  const lists: Record<Environment, Entry[] | undefined> = {
    production: config.production,
    sandbox: config.sandbox,
  };
  const rotationOf = (env: Environment): Rotation | undefined => {
    const entries = lists[env];
    if (entries === undefined) return undefined;
    return reshape(`${config.pluginId}|${env}`, entries);
  };
  const suspensionKey = (env: Environment, entryKey: string) => `${config.pluginId}|${env}|${entryKey}`;
  const select = (
    env: Environment,
    nowMs: number,
    choose: typeof peekSmooth,
    tried?: ReadonlySet<string>,
  ): Selection | { kind: "exhausted" } => {
    const rotation = rotationOf(env);
    if (rotation === undefined) return { kind: "no-list" };
    const { entries, slots } = rotation;
    if (nowMs > rotation.lastUsedMs) rotation.lastUsedMs = nowMs;
    // Most picks happen with nothing suspended: then no entry needs a lookup.
    const anySuspended = suspensions.anyIn(`${config.pluginId}|${env}`, nowMs);
    const available = anySuspended
      ? (i: number) => !suspensions.isSuspended(suspensionKey(env, slots[i]?.key ?? ""), nowMs)
      : always;
    const index =
      tried === undefined
        ? choose(slots, available)
        : pickSmooth(slots, available, (i) => tried.has(slots[i]?.key ?? ""));
    moved();
    if (index !== -1) return { kind: "picked", entry: entries[index] as Entry };
    if (tried !== undefined && slots.some((_, i) => available(i))) return { kind: "exhausted" };
    // Every caller answers it with the all-suspended refusal.
    countAllSuspended(config.pluginId, env);
    let first = Number.POSITIVE_INFINITY;
    for (const slot of slots)
      first = Math.min(first, suspensions.resumesAt(suspensionKey(env, slot.key), nowMs) ?? nowMs);
    return { kind: "all-suspended", retryAfterMs: Math.max(1, first - nowMs) };
  };

  return {
    pick(env, nowMs = Date.now()) {
      const selection = select(env, nowMs, pickSmooth) as Selection;
      if (selection.kind === "picked") countPick(config.pluginId, env, selection.entry.key);
      return selection;
    },
    pickExcept(env, tried, nowMs = Date.now()) {
      const selection = select(env, nowMs, pickSmooth, tried);
      if (selection.kind === "picked") countPick(config.pluginId, env, selection.entry.key);
      return selection;
    },
    peek(env, nowMs = Date.now()) {
      return select(env, nowMs, peekSmooth) as Selection;
    },
    suspend(env, entryKey, durationMs, nowMs = Date.now(), reason = "") {
      const key = suspensionKey(env, entryKey);
      if (!suspensions.suspend(key, durationMs, nowMs, `${config.pluginId}|${env}`, reason)) return;
      countSuspension(config.pluginId, env, entryKey, reason);
      changed();
      const untilMs = nowMs + durationMs;
      policy.share({ kind: "suspended", pluginId: config.pluginId, env, entryKey, untilMs, reason });
    },
    markSuspect(env, entryKey) {
      suspects.add(suspensionKey(env, entryKey));
      changed();
      policy.share({ kind: "suspect", pluginId: config.pluginId, env, entryKey });
    },
    takeProbe(env, entryKey) {
      const taken = suspects.delete(suspensionKey(env, entryKey));
      if (!taken) return false;
      changed();
      policy.share({ kind: "probe-taken", pluginId: config.pluginId, env, entryKey });
      return true;
    },
    benchUnreachable(env, entryKey, nowMs = Date.now()) {
      const { baseSeconds, maxSeconds } = config.unreachable;
      const key = suspensionKey(env, entryKey);
      if (baseSeconds <= 0 || suspensions.isSuspended(key, nowMs)) return 0;
      const mine = streaks.get(config.pluginId) ?? new Map<string, number>();
      streaks.set(config.pluginId, mine);
      const inARow = (mine.get(key) ?? 0) + 1;
      mine.set(key, inARow);
      const durationMs = Math.min(maxSeconds, baseSeconds * 2 ** Math.min(inARow - 1, 30)) * 1000;
      const reason = `unreachable (${inARow} in a row)`;
      suspensions.suspend(key, durationMs, nowMs, `${config.pluginId}|${env}`, reason);
      countSuspension(config.pluginId, env, entryKey, reason);
      changed();
      const untilMs = nowMs + durationMs;
      policy.share({ kind: "suspended", pluginId: config.pluginId, env, entryKey, untilMs, reason });
      return durationMs;
    },
    reached(env, entryKey) {
      const mine = streaks.get(config.pluginId);
      if (mine?.delete(suspensionKey(env, entryKey)) !== true) return;
      if (mine.size === 0) streaks.delete(config.pluginId);
      changed();
    },
    hasStreaks() {
      return streaks.has(config.pluginId);
    },
  };
}

/** The rotation for this state key, rebuilt only when the entry list differs from the one it was built for. */
function reshape(stateKey: string, entries: Entry[]): Rotation {
  const existing = rotations.get(stateKey);
  if (existing !== undefined && existing.entries === entries) return existing;
  if (existing !== undefined && sameEntries(existing.entries, entries)) {
    existing.entries = entries;
    return existing;
  }
  const previous =
    existing === undefined
      ? (restoredPositions.get(stateKey) ?? new Map<string, number>())
      : new Map(existing.slots.map((slot) => [slot.key, slot.current]));
  restoredPositions.delete(stateKey);
  const kept = new Set(entries.map((entry) => entry.key));
  for (const slot of existing?.slots ?? [])
    if (!kept.has(slot.key)) suspects.delete(`${stateKey}|${slot.key}`);
  const rotation: Rotation = {
    entries,
    slots: entries.map((entry) => ({
      key: entry.key,
      weight: entry.weight,
      current: previous.get(entry.key) ?? 0,
    })),
    lastUsedMs: existing?.lastUsedMs ?? Date.now(),
  };
  rotations.set(stateKey, rotation);
  return rotation;
}

/**
 * Drops the rotation and suspects of every plugin and environment not picked from for IDLE_STATE_MS. Running
 * suspensions stay: they expire by themselves, and an entry must not come back early because it was idle.
 */
function forgetIdle(nowMs: number): void {
  for (const [stateKey, rotation] of rotations) {
    if (nowMs - rotation.lastUsedMs < IDLE_STATE_MS) continue;
    rotations.delete(stateKey);
    for (const suspect of suspects) if (suspect.startsWith(`${stateKey}|`)) suspects.delete(suspect);
    const pluginId = stateKey.slice(0, stateKey.lastIndexOf("|"));
    for (const key of streaks.get(pluginId)?.keys() ?? []) {
      if (key.startsWith(`${stateKey}|`)) streaks.get(pluginId)?.delete(key);
    }
    if (streaks.get(pluginId)?.size === 0) streaks.delete(pluginId);
  }
  suspensions.forgetPast(nowMs);
  forgetIdleConfigs(nowMs, IDLE_STATE_MS, (pluginId) =>
    [...rotations.keys()].some((stateKey) => stateKey.startsWith(`${pluginId}|`)),
  );
}

/** How many rotations are kept (for tests of forgetIdle). */
export function rotationCount(): number {
  return rotations.size;
}

function sameEntries(a: Entry[], b: Entry[]): boolean {
  return (
    a.length === b.length && a.every((entry, i) => entry.key === b[i]?.key && entry.weight === b[i]?.weight)
  );
}
