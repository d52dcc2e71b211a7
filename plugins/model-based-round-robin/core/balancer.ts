/**
 * Rotation and suspension state for one plugin configuration, kept outside the plugin instance: Kong starts a
 * new instance on every configuration reload, so the state is looked up by the plugin's id (`__plugin_id`) and
 * environment. When the model list changes, entries that remain keep their place and suspension, new ones
 * start level (current weight 0), removed ones are dropped: no burst either way.
 */
import type { Entry, Environment, RoundRobinConfig } from "./config";
import { peekSmooth, pickSmooth, type Slot } from "./selection";
import { SuspensionStore } from "./suspension";

/** The outcome of one turn of the rotation. */
export type Selection =
  | { kind: "picked"; entry: Entry }
  | { kind: "all-suspended"; retryAfterMs: number }
  | { kind: "no-list" };

export interface Balancer {
  pick(env: Environment, nowMs?: number): Selection;
  /** The entry the next pick would choose, without taking its turn. */
  peek(env: Environment, nowMs?: number): Selection;
  suspend(env: Environment, entryKey: string, durationMs: number, nowMs?: number): void;
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
/** Per plugin, the entries (by suspension key) benched as unreachable in a row, and how many times. */
const streaks = new Map<string, Map<string, number>>();
/** Rotation positions read from a snapshot, taken up when the plugin's rotation is first built. */
const restoredPositions = new Map<string, Map<string, number>>();
const changeListeners: (() => void)[] = [];
/** Counts every change, picks included: a snapshot is due when it moved since the last one. */
let revision = 0;

export function stateRevision(): number {
  return revision;
}

/** Called after every change worth keeping across a restart (not after each pick: positions are polled). */
export function onStateChange(listener: () => void): void {
  changeListeners.push(listener);
}

function changed(): void {
  revision++;
  for (const listener of changeListeners) listener();
}

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
  const select = (env: Environment, nowMs: number, choose: typeof pickSmooth): Selection => {
    const rotation = rotationOf(env);
    if (rotation === undefined) return { kind: "no-list" };
    const { entries, slots } = rotation;
    if (nowMs > rotation.lastUsedMs) rotation.lastUsedMs = nowMs;
    // Most picks happen with nothing suspended: then no entry needs a lookup.
    const anySuspended = suspensions.anyIn(`${config.pluginId}|${env}`, nowMs);
    const index = choose(
      slots,
      anySuspended ? (i) => !suspensions.isSuspended(suspensionKey(env, slots[i]?.key ?? ""), nowMs) : always,
    );
    revision++;
    if (index !== -1) return { kind: "picked", entry: entries[index] as Entry };
    let first = Number.POSITIVE_INFINITY;
    for (const slot of slots)
      first = Math.min(first, suspensions.resumesAt(suspensionKey(env, slot.key), nowMs) ?? nowMs);
    return { kind: "all-suspended", retryAfterMs: Math.max(1, first - nowMs) };
  };

  return {
    pick(env, nowMs = Date.now()) {
      return select(env, nowMs, pickSmooth);
    },
    peek(env, nowMs = Date.now()) {
      return select(env, nowMs, peekSmooth);
    },
    suspend(env, entryKey, durationMs, nowMs = Date.now()) {
      suspensions.suspend(suspensionKey(env, entryKey), durationMs, nowMs, `${config.pluginId}|${env}`);
      changed();
    },
    markSuspect(env, entryKey) {
      suspects.add(suspensionKey(env, entryKey));
      changed();
    },
    takeProbe(env, entryKey) {
      const taken = suspects.delete(suspensionKey(env, entryKey));
      if (taken) changed();
      return taken;
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
      suspensions.suspend(key, durationMs, nowMs, `${config.pluginId}|${env}`);
      changed();
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
}

/** How many rotations are kept (for tests of forgetIdle). */
export function rotationCount(): number {
  return rotations.size;
}

/** What a restart must not forget, as plain data (see persistence.ts for where it is kept). */
export interface StateSnapshot {
  version: 1;
  suspensions: [key: string, untilMs: number, group: string][];
  suspects: string[];
  streaks: [pluginId: string, key: string, inARow: number][];
  /** Rotation positions (current weights) per plugin and environment. */
  positions: [stateKey: string, [entryKey: string, current: number][]][];
}

export function exportState(nowMs = Date.now()): StateSnapshot {
  const positions: StateSnapshot["positions"] = [];
  for (const [stateKey, rotation] of rotations) {
    positions.push([stateKey, rotation.slots.map((slot) => [slot.key, slot.current])]);
  }
  for (const [stateKey, restored] of restoredPositions) positions.push([stateKey, [...restored]]);
  const streakRows: StateSnapshot["streaks"] = [];
  for (const [pluginId, mine] of streaks) for (const [key, n] of mine) streakRows.push([pluginId, key, n]);
  return {
    version: 1,
    suspensions: suspensions.entries(nowMs),
    suspects: [...suspects],
    streaks: streakRows,
    positions,
  };
}

/**
 * Takes in a snapshot written before a restart: suspensions whose deadline has not passed, suspects, failure
 * streaks, and rotation positions for rotations not built yet. Anything malformed is skipped, never thrown.
 */
export function importState(snapshot: unknown, nowMs = Date.now()): void {
  if (!isSnapshot(snapshot)) return;
  for (const row of snapshot.suspensions) {
    const [key, until, group] = row;
    if (typeof key === "string" && typeof group === "string" && Number.isFinite(until)) {
      suspensions.suspend(key, until - nowMs, nowMs, group);
    }
  }
  for (const key of snapshot.suspects) if (typeof key === "string") suspects.add(key);
  for (const [pluginId, key, n] of snapshot.streaks) {
    if (typeof pluginId !== "string" || typeof key !== "string" || !(n > 0)) continue;
    const mine = streaks.get(pluginId) ?? new Map<string, number>();
    mine.set(key, n);
    streaks.set(pluginId, mine);
  }
  for (const [stateKey, slots] of snapshot.positions) {
    if (typeof stateKey !== "string" || rotations.has(stateKey) || !Array.isArray(slots)) continue;
    const valid = slots.filter(
      (slot): slot is [string, number] =>
        Array.isArray(slot) && typeof slot[0] === "string" && Number.isFinite(slot[1]),
    );
    restoredPositions.set(stateKey, new Map(valid));
  }
}

function isSnapshot(value: unknown): value is StateSnapshot {
  const v = value as Partial<StateSnapshot> | null;
  return (
    v !== null &&
    typeof v === "object" &&
    v.version === 1 &&
    Array.isArray(v.suspensions) &&
    Array.isArray(v.suspects) &&
    Array.isArray(v.streaks) &&
    Array.isArray(v.positions)
  );
}

function sameEntries(a: Entry[], b: Entry[]): boolean {
  return (
    a.length === b.length && a.every((entry, i) => entry.key === b[i]?.key && entry.weight === b[i]?.weight)
  );
}
