/**
 * Rotation and suspension state for one plugin configuration, kept outside the plugin instance: Kong starts a
 * new instance on every configuration reload, so the state is looked up by the plugin's id (`__plugin_id`) and
 * environment. When the model list changes, entries that remain keep their place and suspension, new ones
 * start level (current weight 0), removed ones are dropped: no burst either way.
 */
import type { Entry, Environment, RoundRobinConfig } from "./config";
import { pickSmooth, type Slot } from "./selection";
import { SuspensionStore } from "./suspension";

/** The outcome of one turn of the rotation. */
export type Selection =
  | { kind: "picked"; entry: Entry }
  | { kind: "all-suspended"; retryAfterMs: number }
  | { kind: "no-list" };

export interface Balancer {
  pick(env: Environment, nowMs?: number): Selection;
  suspend(env: Environment, entryKey: string, durationMs: number, nowMs?: number): void;
  /** The entry's last answer suspended it: the next request that can be proxied buffered should probe it. */
  markSuspect(env: Environment, entryKey: string): void;
  /** True once per suspect entry: the caller proxies this request buffered to read a billing error. */
  takeProbe(env: Environment, entryKey: string): boolean;
}

interface Rotation {
  entries: Entry[];
  slots: (Slot & { key: string })[];
  /** Last pick (ms since epoch): a rotation nobody picks from for a day belongs to a deleted plugin. */
  lastUsedMs: number;
}

/** Kong never tells a plugin server that a plugin was deleted; state idle this long is dropped. */
const IDLE_STATE_MS = 24 * 3600 * 1000;

const suspensions = new SuspensionStore();
const always = () => true;
const rotations = new Map<string, Rotation>();
/**
 * Entries whose last status-based suspension may hide a billing error. Reading a body needs buffered proxying,
 * which costs every request it is used for, so only one request per suspension is spent on finding out.
 */
const suspects = new Set<string>();

export function balancerFor(config: RoundRobinConfig, nowMs = Date.now()): Balancer {
  // Kong creates instances on configuration changes only: a cheap moment to forget deleted plugins.
  forgetIdle(nowMs);
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

  return {
    pick(env, nowMs = Date.now()) {
      const rotation = rotationOf(env);
      if (rotation === undefined) return { kind: "no-list" };
      const { entries, slots } = rotation;
      if (nowMs > rotation.lastUsedMs) rotation.lastUsedMs = nowMs;
      // Most picks happen with nothing suspended: then no entry needs a lookup.
      const anySuspended = suspensions.anyIn(`${config.pluginId}|${env}`, nowMs);
      const index = pickSmooth(
        slots,
        anySuspended
          ? (i) => !suspensions.isSuspended(suspensionKey(env, slots[i]?.key ?? ""), nowMs)
          : always,
      );
      if (index !== -1) return { kind: "picked", entry: entries[index] as Entry };
      let first = Number.POSITIVE_INFINITY;
      for (const slot of slots)
        first = Math.min(first, suspensions.resumesAt(suspensionKey(env, slot.key), nowMs) ?? nowMs);
      return { kind: "all-suspended", retryAfterMs: Math.max(1, first - nowMs) };
    },
    suspend(env, entryKey, durationMs, nowMs = Date.now()) {
      suspensions.suspend(suspensionKey(env, entryKey), durationMs, nowMs, `${config.pluginId}|${env}`);
    },
    markSuspect(env, entryKey) {
      suspects.add(suspensionKey(env, entryKey));
    },
    takeProbe(env, entryKey) {
      return suspects.delete(suspensionKey(env, entryKey));
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
  const previous = new Map(existing?.slots.map((slot) => [slot.key, slot.current]));
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
  }
  suspensions.forgetPast(nowMs);
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
