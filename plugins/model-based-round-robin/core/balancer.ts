/**
 * Rotation and suspension state for one plugin configuration, kept outside the plugin instance: Kong starts a
 * new instance on every configuration reload, so the state is looked up by the plugin's id (`__plugin_id`) and
 * environment. When the model list changes, entries that remain keep their place and suspension, new ones
 * start level (current weight 0), removed ones are dropped: no burst either way.
 */
import type { Entry, Environment, RoundRobinConfig } from "./config";
import type { EntryRef } from "./entry-record";
import { countAllSuspended, countPick, countSuspension, forgetIdleConfigs, registerConfig } from "./metrics";
import {
  anySuspended,
  configure,
  forgetIdle as forgetIdleState,
  hasRotation,
  hasStreaks,
  rotationCount as keptRotations,
  moved,
  recordOf,
  resumesAt,
  rotationOf,
  write,
} from "./process-state";
import { peekSmooth, pickSmooth } from "./selection";
import { LOCAL_POLICY, type StatePolicy } from "./shared-state";

/** Kong never tells a plugin server that a plugin was deleted; state idle this long is dropped. */
const IDLE_STATE_MS = 24 * 3600 * 1000;
const always = () => true;

/** The outcome of one turn of the rotation. */
export type Selection =
  | { kind: "picked"; entry: Entry }
  /** `unreachable`: every entry is benched because it could not be reached (none for its quota). */
  | { kind: "all-suspended"; retryAfterMs: number; unreachable: boolean }
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
  configure(config, nowMs);
  const { pluginId } = config;
  const lists: Record<Environment, Entry[] | undefined> = {
    production: config.production,
    sandbox: config.sandbox,
  };
  const ref = (env: Environment, entryKey: string): EntryRef => ({ pluginId, env, entryKey });
  // Entries whose key resolved empty (config.ts noKey) are skipped like suspended ones, for as long as this
  // configuration lasts; undefined when every entry of the environment has its key (the common case).
  const keyless = (entries: Entry[] | undefined) =>
    entries?.some((e) => e.noKey !== undefined) ? entries.map((e) => e.noKey !== undefined) : undefined;
  const noKey: Record<Environment, boolean[] | undefined> = {
    production: keyless(config.production),
    sandbox: keyless(config.sandbox),
  };
  const select = (
    env: Environment,
    nowMs: number,
    choose: typeof peekSmooth,
    tried?: ReadonlySet<string>,
  ): Selection | { kind: "exhausted" } => {
    const entries = lists[env];
    if (entries === undefined) return { kind: "no-list" };
    const rotation = rotationOf(config, env, entries, nowMs);
    const { slots } = rotation;
    if (nowMs > rotation.lastUsedMs) rotation.lastUsedMs = nowMs;
    // Most picks happen with nothing suspended: then no entry needs a lookup.
    const running = anySuspended(pluginId, env, nowMs)
      ? (i: number) => (slots[i]?.suspension?.untilMs ?? 0) <= nowMs
      : always;
    const unusable = noKey[env];
    const available = unusable === undefined ? running : (i: number) => !unusable[i] && running(i);
    const index =
      tried === undefined
        ? choose(slots, available)
        : pickSmooth(slots, available, (i) => tried.has(slots[i]?.ref.entryKey ?? ""));
    moved();
    if (index !== -1) return { kind: "picked", entry: entries[index] as Entry };
    if (tried !== undefined && slots.some((_, i) => available(i))) return { kind: "exhausted" };
    // Every caller answers it with the all-suspended refusal.
    countAllSuspended(pluginId, env);
    // The first entry back; a keyless one never comes back by itself (the answer then advertises max_retry_after).
    let first = Number.POSITIVE_INFINITY;
    slots.forEach((slot, i) => {
      if (unusable?.[i] !== true) first = Math.min(first, resumesAt(slot.ref, nowMs) ?? nowMs);
    });
    const usable = slots.filter((_, i) => unusable?.[i] !== true);
    const unreachable = usable.length > 0 && usable.every((slot) => slot.suspension?.cause === "unreachable");
    return { kind: "all-suspended", retryAfterMs: Math.max(1, first - nowMs), unreachable };
  };
  /** A suspension this node decided: kept, counted and shared only when it moved the deadline. */
  const suspendHere = (
    env: Environment,
    entryKey: string,
    untilMs: number,
    nowMs: number,
    reason: string,
  ) => {
    const change = { kind: "suspended", untilMs, reason, source: "local" } as const;
    if (!write(ref(env, entryKey), change, "balancer", nowMs)) return false;
    countSuspension(pluginId, env, entryKey, reason);
    policy.share({ kind: "suspended", pluginId, env, entryKey, untilMs, reason });
    return true;
  };

  return {
    pick(env, nowMs = Date.now()) {
      const selection = select(env, nowMs, pickSmooth) as Selection;
      if (selection.kind === "picked") countPick(pluginId, env, selection.entry.key);
      return selection;
    },
    pickExcept(env, tried, nowMs = Date.now()) {
      const selection = select(env, nowMs, pickSmooth, tried);
      if (selection.kind === "picked") countPick(pluginId, env, selection.entry.key);
      return selection;
    },
    peek(env, nowMs = Date.now()) {
      return select(env, nowMs, peekSmooth) as Selection;
    },
    suspend(env, entryKey, durationMs, nowMs = Date.now(), reason = "") {
      if (durationMs > 0) suspendHere(env, entryKey, nowMs + durationMs, nowMs, reason);
    },
    markSuspect(env, entryKey) {
      write(ref(env, entryKey), { kind: "suspect" }, "balancer");
      policy.share({ kind: "suspect", pluginId, env, entryKey });
    },
    takeProbe(env, entryKey) {
      if (!write(ref(env, entryKey), { kind: "probe-taken" }, "balancer")) return false;
      policy.share({ kind: "probe-taken", pluginId, env, entryKey });
      return true;
    },
    benchUnreachable(env, entryKey, nowMs = Date.now()) {
      const { baseSeconds, maxSeconds } = config.unreachable;
      const record = recordOf(ref(env, entryKey));
      if (baseSeconds <= 0 || record === undefined || resumesAt(record.ref, nowMs) !== undefined) return 0;
      const inARow = record.streak + 1;
      write(record.ref, { kind: "streak", inARow }, "balancer", nowMs);
      const durationMs = Math.min(maxSeconds, baseSeconds * 2 ** Math.min(inARow - 1, 30)) * 1000;
      suspendHere(env, entryKey, nowMs + durationMs, nowMs, `unreachable (${inARow} in a row)`);
      return durationMs;
    },
    reached(env, entryKey) {
      write(ref(env, entryKey), { kind: "streak", inARow: 0 }, "balancer");
    },
    hasStreaks() {
      return hasStreaks(pluginId);
    },
  };
}

/**
 * Drops the rotations of every plugin and environment not picked from for IDLE_STATE_MS (process-state.ts
 * forgetIdle), and the counts of configurations no instance was started for since.
 */
function forgetIdle(nowMs: number): void {
  forgetIdleState(nowMs, IDLE_STATE_MS);
  forgetIdleConfigs(nowMs, IDLE_STATE_MS, hasRotation);
}

/** How many rotations are kept (for tests of forgetIdle). */
export function rotationCount(): number {
  return keptRotations();
}
