/**
 * The part of an entry's state that every Kong node of a cluster shares (policy `redis`): suspensions with
 * their deadline and reason (billing benches and unreachable benches among them) and which entry awaits a
 * billing probe. Rotation positions and failure streaks stay per node: every node runs the same smooth
 * sequence, so the cluster keeps the exact proportions without sharing them.
 *
 * This process's memory (process-state.ts) is always the store the request path reads; a policy only decides
 * where else a change goes. Local: nowhere. Redis (policies/redis.ts): to every other node, which takes it in
 * through applyShared. The core stays free of I/O: it calls share() and never waits for it.
 */
import { type EntryRef, runningSuspension } from "./entry-record";
import { records, write } from "./process-state";

export type SharedChange =
  | (EntryRef & { kind: "suspended"; untilMs: number; reason: string })
  /** The entry's next answer that can be read should be probed for a billing error. */
  | (EntryRef & { kind: "suspect" })
  /** A node took the probe: no other node should spend a request on it. */
  | (EntryRef & { kind: "probe-taken" })
  /** An operator lifted the entry's suspension or bench (status/actions.ts): every node ends it. */
  | (EntryRef & { kind: "lifted" });

export interface StatePolicy {
  /** Tells the other nodes about a change this node made. Never waits and never throws: log runs it. */
  share(change: SharedChange): void;
  /**
   * Settles once this node holds the cluster's state for the plugin, or when waiting longer would keep
   * requests waiting (bounded by redis.timeout); undefined once there is nothing to wait for.
   */
  ready(): Promise<void> | undefined;
}

/** policy `local`: the state stays in this plugin server. */
export const LOCAL_POLICY: StatePolicy = {
  share() {},
  ready: () => undefined,
};

/**
 * Takes in a change another node made (or one read from Redis) into this process's memory, without sharing it
 * again, through the one writer: an entry the plugin's configuration lacks is ignored, a deadline clamped, and a
 * suspension only ever extends one. Returns whether anything changed.
 */
export function applyShared(change: SharedChange, nowMs = Date.now()): boolean {
  const { pluginId, env, entryKey } = change;
  const ref = { pluginId, env, entryKey };
  switch (change.kind) {
    case "suspended": {
      const { untilMs, reason } = change;
      return write(ref, { kind: "suspended", untilMs, reason, source: "peer" }, "Redis", nowMs);
    }
    case "suspect":
      return write(ref, { kind: "suspect" }, "Redis", nowMs);
    case "probe-taken":
      return write(ref, { kind: "probe-taken" }, "Redis", nowMs);
    case "lifted":
      return write(ref, { kind: "lifted" }, "Redis", nowMs);
  }
}

/** What this node holds of a plugin's shared state, as changes: running suspensions and probe marks. */
export function sharedStateOf(pluginId: string, nowMs = Date.now()): SharedChange[] {
  const out: SharedChange[] = [];
  for (const record of records(pluginId)) {
    const running = runningSuspension(record, nowMs);
    if (running !== undefined)
      out.push({ kind: "suspended", ...record.ref, untilMs: running.untilMs, reason: running.text });
  }
  for (const record of records(pluginId)) if (record.suspect) out.push({ kind: "suspect", ...record.ref });
  return out;
}

/**
 * The suspensions this node decided itself from a provider's answer (source `local`) or an operator asked of it
 * (source `operator`, a drain): what it publishes again after a Redis outage. Never what it only heard from
 * Redis, so a suspension forged into Redis (or one Redis was emptied of on purpose) is not written back by every
 * node that took it in.
 */
export function ownSuspensions(pluginId: string, nowMs = Date.now()): SharedChange[] {
  const out: SharedChange[] = [];
  for (const record of records(pluginId)) {
    const running = runningSuspension(record, nowMs);
    if (running?.source === "local" || running?.source === "operator")
      out.push({ kind: "suspended", ...record.ref, untilMs: running.untilMs, reason: running.text });
  }
  return out;
}
