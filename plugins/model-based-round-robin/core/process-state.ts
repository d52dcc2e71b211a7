/**
 * What this plugin server process remembers for every plugin configuration, outside the plugin instances (Kong
 * re-creates those on every configuration change): suspensions, rotations, billing suspects, failure streaks.
 * balancer.ts makes the decisions over it; persistence.ts keeps it across restarts through the snapshot below.
 */
import type { Entry } from "./config";
import type { Slot } from "./selection";
import { SuspensionStore } from "./suspension";

export interface Rotation {
  entries: Entry[];
  slots: (Slot & { key: string })[];
  /** Last pick (ms since epoch): a rotation nobody picks from for a day belongs to a deleted plugin. */
  lastUsedMs: number;
}

export const suspensions = new SuspensionStore();
export const rotations = new Map<string, Rotation>();
/**
 * Entries whose last status-based suspension may hide a billing error. Reading a body needs buffered proxying,
 * which costs every request it is used for, so only one request per suspension is spent on finding out.
 */
export const suspects = new Set<string>();
/** Per plugin, the entries (by suspension key) benched as unreachable in a row, and how many times. */
export const streaks = new Map<string, Map<string, number>>();
/** Rotation positions read from a snapshot, taken up when the plugin's rotation is first built. */
export const restoredPositions = new Map<string, Map<string, number>>();
const changeListeners: (() => void)[] = [];
/** Counts every change, picks included: a snapshot is due when it moved since the last one. */
let revision = 0;

/** A change that only the periodic snapshot needs to see (a pick moves rotation positions). */
export function moved(): void {
  revision++;
}

export function stateRevision(): number {
  return revision;
}

/** Called after every change worth keeping across a restart (not after each pick: positions are polled). */
export function onStateChange(listener: () => void): void {
  changeListeners.push(listener);
}

/** A change worth keeping across a restart. */
export function changed(): void {
  revision++;
  for (const listener of changeListeners) listener();
}

/** What a restart must not forget, as plain data (see persistence.ts for where it is kept). */
export interface StateSnapshot {
  version: 1;
  /** The reason was added later: a snapshot without it restores an empty one. */
  suspensions: [key: string, untilMs: number, group: string, reason?: string][];
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
    const [key, until, group, reason] = row;
    if (typeof key === "string" && typeof group === "string" && Number.isFinite(until)) {
      suspensions.suspend(key, until - nowMs, nowMs, group, typeof reason === "string" ? reason : "");
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
