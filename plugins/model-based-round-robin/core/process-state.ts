/**
 * What this plugin server process remembers for every plugin configuration, outside the plugin instances (Kong
 * re-creates those on every configuration change): one record per entry (entry-record.ts), kept per plugin and
 * environment for the entries of the plugin's current configuration only.
 *
 * This module is the records' only writer. Every change goes through write(): the balancer's decisions, a
 * peer's change read from Redis or pushed through its channel, a row of the state file. write() is also the one
 * place where what arrives is checked: an entry the plugin's configuration does not have is ignored (so memory
 * and the state file stay bounded by the configuration's size, whatever arrives), a deadline is clamped to now +
 * the longest suspension the configuration can set, a rotation position to ±the environment's total weight, a
 * streak to MAX_STREAK; a value of the wrong type is skipped, with one log line (rate-limited) naming it.
 */
import type { Entry, Environment, RoundRobinConfig } from "./config";
import {
  type EntryRecord,
  type EntryRef,
  isEnvironment,
  newRecord,
  runningSuspension,
  type SuspensionRecord,
  type SuspensionSource,
} from "./entry-record";
import { explainReason } from "./signals";

/** What one change does to one entry. */
export type EntryChange =
  | {
      kind: "suspended";
      untilMs: number;
      /** The human sentence; cause and signal are read from it when not given. */
      reason: string;
      source: SuspensionSource;
      cause?: string;
      signal?: string;
    }
  | { kind: "suspect" }
  | { kind: "probe-taken" }
  /** Benched as unreachable this many times in a row (0: it answered). */
  | { kind: "streak"; inARow: number }
  | { kind: "position"; current: number }
  /** An operator ended the entry's suspension or bench: no suspension, no streak, no probe mark. */
  | { kind: "lifted" };

/** Who handed a change in, for the log line of a refused one. */
export type Origin = "balancer" | "Redis" | "the state file" | "operator";

/** The rotation of one plugin's environment: its records in the configuration's order. */
export interface Rotation {
  entries: Entry[];
  slots: EntryRecord[];
  /** Last pick (ms since epoch): a rotation nobody picks from for a day belongs to a deleted plugin. */
  lastUsedMs: number;
}

interface PluginState {
  config: RoundRobinConfig;
  /** The longest suspension this configuration can set: no deadline from anywhere lies further ahead. */
  longestMs: number;
  configuredMs: number;
  records: Record<Environment, Map<string, EntryRecord>>;
  rotations: Partial<Record<Environment, Rotation>>;
  /** Per environment, the latest deadline: lets a pick skip every lookup when none is running. */
  latestUntilMs: Record<Environment, number>;
}

/** A streak only doubles the bench up to 2^30 times the base; more in a row means nothing more. */
const MAX_STREAK = 64;
/**
 * The longest drain an operator can ask for (status/actions.ts), and the clamp of a drain that arrives from Redis
 * or the state file: a drain is meant to outlast anything the configuration can set (maintenance, an incident).
 */
export const MAX_DRAIN_SECONDS = 30 * 24 * 3600;
/** The reason sentence kept and shown; a longer one (from a peer) is cut. */
export const MAX_REASON_CHARS = 200;
/** Refused changes are logged at most this often (the first at once, then with the count since). */
const REJECTION_LOG_EVERY_MS = 60_000;
const CAUSE_OR_SIGNAL = /^[a-z0-9_-]{1,40}$/;

const plugins = new Map<string, PluginState>();
const changeListeners: (() => void)[] = [];
const rejectionListeners: ((message: string) => void)[] = [];
let rejectedSinceLog = 0;
let lastRejectionLogMs = Number.NEGATIVE_INFINITY;
/** Counts every change, picks included: a snapshot is due when it moved since the last one. */
let revision = 0;

/**
 * The longest suspension this configuration can set: the max of on_quota_exceed_suspend_duration (no hint),
 * max_suspend_duration (a provider's hint is clamped to it), insufficient_quota_suspend_duration (billing) and
 * unreachable_max_suspend_duration (the doubled bench), in ms.
 */
export function longestSuspensionMs(config: RoundRobinConfig): number {
  return (
    Math.max(
      config.suspendSeconds,
      config.hints.maxSeconds,
      config.billingSeconds,
      config.unreachable.maxSeconds,
    ) * 1000
  );
}

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

/** Where a refused change is reported (rate-limited): the plugin's stderr log. */
export function onRejected(listener: (message: string) => void): void {
  rejectionListeners.push(listener);
}

function changed(): void {
  revision++;
  for (const listener of changeListeners) listener();
}

/**
 * The plugin's configuration is (still) this one: records of entries it no longer has are dropped, weights
 * follow it, and rows of the state file kept for it until now are taken in. Called for every new instance.
 */
export function configure(config: RoundRobinConfig, nowMs = Date.now()): void {
  let state = plugins.get(config.pluginId);
  if (state === undefined) {
    state = {
      config,
      longestMs: longestSuspensionMs(config),
      configuredMs: nowMs,
      records: { production: new Map(), sandbox: new Map() },
      rotations: {},
      latestUntilMs: { production: 0, sandbox: 0 },
    };
    plugins.set(config.pluginId, state);
  } else if (state.config !== config) {
    state.config = config;
    state.longestMs = longestSuspensionMs(config);
    for (const env of ["production", "sandbox"] as const) {
      const weights = new Map((config[env] ?? []).map((entry) => [entry.key, entry.weight]));
      for (const [key, record] of state.records[env]) {
        const weight = weights.get(key);
        if (weight === undefined) state.records[env].delete(key);
        else record.weight = weight;
      }
    }
  }
  state.configuredMs = Math.max(state.configuredMs, nowMs);
  afterConfigure(config.pluginId, nowMs);
}

/** Set by snapshot.ts: takes in the state file's rows kept for a plugin whose configuration had not come yet. */
let afterConfigure: (pluginId: string, nowMs: number) => void = () => {};
export function whenConfigured(hook: (pluginId: string, nowMs: number) => void): void {
  afterConfigure = hook;
}

/** The configuration this process serves under the plugin id (the operator actions select entries from it). */
export function configOf(pluginId: string): RoundRobinConfig | undefined {
  return plugins.get(pluginId)?.config;
}

export function isConfigured(pluginId: string): boolean {
  return plugins.has(pluginId);
}

/**
 * The rotation of this configuration's environment, rebuilt only when the entry list differs from the one it was
 * built for: entries that remain keep their place and suspension, new ones start level (current weight 0),
 * removed ones are dropped, so there is no burst either way.
 */
export function rotationOf(
  config: RoundRobinConfig,
  env: Environment,
  entries: Entry[],
  nowMs: number,
): Rotation {
  let state = plugins.get(config.pluginId);
  if (state === undefined) {
    configure(config, nowMs);
    state = plugins.get(config.pluginId) as PluginState;
  }
  const existing = state.rotations[env];
  if (existing !== undefined && existing.entries === entries) return existing;
  const records = state.records[env];
  const slots = entries.map((entry) => {
    const ref = { pluginId: config.pluginId, env, entryKey: entry.key };
    const record = records.get(entry.key) ?? newRecord(ref, entry.weight);
    record.weight = entry.weight;
    return record;
  });
  // Records of entries this list lacks belong to another version of the configuration: a running suspension
  // and streak stay with them (that version may still be current), their place in the rotation does not.
  for (const record of slots) records.set(record.ref.entryKey, record);
  // The caller's clock, not the wall clock: a rotation built "now" must be as idle as its caller says a day later.
  const rotation: Rotation = { entries, slots, lastUsedMs: existing?.lastUsedMs ?? nowMs };
  state.rotations[env] = rotation;
  return rotation;
}

/** True when some entry of the environment may still be suspended at nowMs. */
export function anySuspended(pluginId: string, env: Environment, nowMs: number): boolean {
  return (plugins.get(pluginId)?.latestUntilMs[env] ?? 0) > nowMs;
}

/** The record of a configured entry, or undefined (the entry is not in the plugin's configuration). */
export function recordOf(ref: EntryRef): EntryRecord | undefined {
  const state = plugins.get(ref.pluginId);
  if (state === undefined || !isEnvironment(ref.env)) return undefined;
  const existing = state.records[ref.env].get(ref.entryKey);
  if (existing !== undefined) return existing;
  const entry = state.config[ref.env]?.find((e) => e.key === ref.entryKey);
  if (entry === undefined) return undefined;
  const record = newRecord({ pluginId: ref.pluginId, env: ref.env, entryKey: ref.entryKey }, entry.weight);
  state.records[ref.env].set(ref.entryKey, record);
  return record;
}

/** The entry's running suspension, or undefined when it is not suspended. */
export function suspensionOf(ref: EntryRef, nowMs: number): SuspensionRecord | undefined {
  const record = plugins.get(ref.pluginId)?.records[ref.env]?.get(ref.entryKey);
  return record === undefined ? undefined : runningSuspension(record, nowMs);
}

/** When the entry returns, or undefined when it is not suspended. */
export function resumesAt(ref: EntryRef, nowMs: number): number | undefined {
  return suspensionOf(ref, nowMs)?.untilMs;
}

/** The records of one plugin (of every plugin without an id), for the Redis resync, the snapshot and /status. */
export function* records(pluginId?: string): Generator<EntryRecord> {
  const states = pluginId === undefined ? plugins.values() : [plugins.get(pluginId)];
  for (const state of states) {
    if (state === undefined) continue;
    yield* state.records.production.values();
    yield* state.records.sandbox.values();
  }
}

/** Some entry of this plugin has failures in a row: only then is an answer worth telling apart. */
export function hasStreaks(pluginId: string): boolean {
  for (const record of records(pluginId)) if (record.streak > 0) return true;
  return false;
}

/**
 * The one writer: checks the change (see the top of this file), applies it and tells the listeners. Returns
 * whether it changed anything (a suspension only ever extends a deadline; a repeat changes nothing).
 */
export function write(ref: EntryRef, change: EntryChange, origin: Origin, nowMs = Date.now()): boolean {
  const state = typeof ref.pluginId === "string" ? plugins.get(ref.pluginId) : undefined;
  const record = state === undefined ? undefined : recordOf(ref);
  if (state === undefined || record === undefined) {
    return reject(origin, ref, "the plugin's configuration has no such entry");
  }
  switch (change.kind) {
    case "suspended": {
      if (typeof change.untilMs !== "number" || Number.isNaN(change.untilMs))
        return reject(origin, ref, `a deadline that is not a number (${String(change.untilMs)})`);
      const text = typeof change.reason === "string" ? change.reason.slice(0, MAX_REASON_CHARS) : "";
      const parts = explainReason(text);
      const cause = fieldOr(change.cause, parts.cause);
      // Clamped: nothing that arrives may keep an entry out longer than this configuration ever would, or a
      // drain longer than MAX_DRAIN_SECONDS. The balancer's own decisions are derived from the configuration
      // already, and an operator's drain was bounded by the listener: both are taken as they are.
      const trusted = origin === "balancer" || origin === "operator";
      const limitMs = cause === "drained" ? MAX_DRAIN_SECONDS * 1000 : state.longestMs;
      const longest = trusted ? Number.POSITIVE_INFINITY : nowMs + limitMs;
      const untilMs = Math.min(change.untilMs, longest);
      if (untilMs <= nowMs) return false;
      const running = runningSuspension(record, nowMs);
      // Two signals for one entry (concurrent 429s): the later deadline wins, a shorter one never shortens it.
      if (running !== undefined && running.untilMs >= untilMs) return false;
      const source = change.source;
      record.suspension = {
        untilMs,
        cause,
        signal: fieldOr(change.signal, parts.signal),
        source: source === "local" || source === "peer" || source === "operator" ? source : "snapshot",
        text,
      };
      const env = record.ref.env;
      if (untilMs > state.latestUntilMs[env]) state.latestUntilMs[env] = untilMs;
      break;
    }
    case "suspect":
      if (record.suspect) return false;
      record.suspect = true;
      break;
    case "probe-taken":
      if (!record.suspect) return false;
      record.suspect = false;
      break;
    case "streak": {
      const n = change.inARow;
      if (!Number.isInteger(n) || n < 0)
        return reject(origin, ref, `a streak that is not a count (${String(n)})`);
      const inARow = Math.min(n, MAX_STREAK);
      if (record.streak === inARow) return false;
      record.streak = inARow;
      break;
    }
    case "position": {
      const c = change.current;
      if (typeof c !== "number" || !Number.isFinite(c))
        return reject(origin, ref, `a rotation position that is not a finite number (${String(c)})`);
      // Smooth round robin keeps every current weight within ± the total; anything beyond would hand one entry
      // the turns of the others for as long as it takes to come back.
      const total = totalWeight(state.config[record.ref.env] ?? []);
      record.current = Math.max(-total, Math.min(total, c));
      moved();
      return true;
    }
    case "lifted": {
      // Ends the suspension (however long, whoever set it) and the bench streak, so the entry's next failure
      // starts from the shortest bench again; the probe mark goes too, as its Redis key does.
      const running = runningSuspension(record, nowMs);
      if (running === undefined && record.streak === 0 && !record.suspect) return false;
      record.suspension = undefined;
      record.streak = 0;
      record.suspect = false;
      break;
    }
    default:
      return reject(origin, ref, "an unknown kind of change");
  }
  changed();
  return true;
}

function fieldOr(value: unknown, fallback: string): string {
  return typeof value === "string" && CAUSE_OR_SIGNAL.test(value) ? value : fallback;
}

function totalWeight(entries: Entry[]): number {
  let total = 0;
  for (const entry of entries) total += entry.weight;
  return total;
}

/** Logs a refused change (the first at once, then one line a minute with the count), and returns false. */
function reject(origin: Origin, ref: EntryRef, why: string): false {
  rejectedSinceLog++;
  const wallMs = Date.now();
  if (wallMs - lastRejectionLogMs < REJECTION_LOG_EVERY_MS) return false;
  const more = rejectedSinceLog - 1;
  rejectedSinceLog = 0;
  lastRejectionLogMs = wallMs;
  const what = `${short(ref.pluginId)} ${short(ref.env)} ${short(ref.entryKey)}`;
  const since = more > 0 ? ` (and ${more} more refused since the last such line)` : "";
  for (const listener of rejectionListeners)
    listener(`ignored state from ${origin} for ${what}: ${why}${since}`);
  return false;
}

/** A value from outside, safe to put in a log line: a string cut short, anything else named by its type. */
function short(value: unknown): string {
  if (typeof value !== "string") return `<${typeof value}>`;
  return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}...` : value);
}

/** Tests of the rate-limited log start from a quiet state. */
export function resetRejectionLog(): void {
  rejectedSinceLog = 0;
  lastRejectionLogMs = Number.NEGATIVE_INFINITY;
}

/**
 * Drops the rotation, place, suspect mark and streak of every plugin environment not picked from for idleMs
 * (Kong never says a plugin was deleted). Running suspensions stay: they expire by themselves, and an entry
 * must not come back early because it was idle. A plugin left with nothing is forgotten.
 */
export function forgetIdle(nowMs: number, idleMs: number): void {
  for (const [pluginId, state] of plugins) {
    for (const env of ["production", "sandbox"] as const) {
      const rotation = state.rotations[env];
      if (rotation !== undefined && nowMs - rotation.lastUsedMs >= idleMs) {
        delete state.rotations[env];
        for (const [key, record] of state.records[env]) {
          if (runningSuspension(record, nowMs) === undefined) state.records[env].delete(key);
          else Object.assign(record, { current: 0, streak: 0, suspect: false });
        }
      }
      if (state.latestUntilMs[env] <= nowMs) state.latestUntilMs[env] = 0;
    }
    const idle = nowMs - state.configuredMs >= idleMs && state.rotations.production === undefined;
    if (idle && state.rotations.sandbox === undefined && !hasRunning(state, nowMs)) plugins.delete(pluginId);
  }
}

function hasRunning(state: PluginState, nowMs: number): boolean {
  for (const env of ["production", "sandbox"] as const)
    for (const record of state.records[env].values()) if (runningSuspension(record, nowMs)) return true;
  return false;
}

/** Whether some environment of the plugin has a rotation (it was picked from within the idle time). */
export function hasRotation(pluginId: string): boolean {
  const rotations = plugins.get(pluginId)?.rotations;
  return rotations !== undefined && Object.keys(rotations).length > 0;
}

/** How many rotations are kept (for tests of forgetIdle). */
export function rotationCount(): number {
  let n = 0;
  for (const state of plugins.values()) n += Object.keys(state.rotations).length;
  return n;
}

/** How many entry records are kept in all (tests: bounded by the configurations, whatever arrives). */
export function recordCount(): number {
  let n = 0;
  for (const _ of records()) n++;
  return n;
}
