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
import type { Environment } from "./config";
import { changed, suspects, suspensions } from "./process-state";

interface EntryRef {
  pluginId: string;
  env: Environment;
  entryKey: string;
}

export type SharedChange =
  | (EntryRef & { kind: "suspended"; untilMs: number; reason: string })
  /** The entry's next answer that can be read should be probed for a billing error. */
  | (EntryRef & { kind: "suspect" })
  /** A node took the probe: no other node should spend a request on it. */
  | (EntryRef & { kind: "probe-taken" });

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

/** The key process-state keeps an entry's suspension and probe mark under. */
export function localKey(ref: EntryRef): string {
  return `${ref.pluginId}|${ref.env}|${ref.entryKey}`;
}

/** The group a suspension belongs to: one plugin's environment. */
export function groupOf(ref: Pick<EntryRef, "pluginId" | "env">): string {
  return `${ref.pluginId}|${ref.env}`;
}

/**
 * Takes in a change another node made (or one read from Redis at start) into this process's memory, without
 * sharing it again. A suspension only ever extends a deadline. Returns whether anything changed.
 */
export function applyShared(change: SharedChange, nowMs = Date.now()): boolean {
  const key = localKey(change);
  let applied = false;
  switch (change.kind) {
    case "suspended":
      applied = suspensions.suspend(key, change.untilMs - nowMs, nowMs, groupOf(change), change.reason);
      break;
    case "suspect":
      applied = !suspects.has(key);
      suspects.add(key);
      break;
    case "probe-taken":
      applied = suspects.delete(key);
      break;
  }
  if (applied) changed();
  return applied;
}

/**
 * What this node holds of a plugin's shared state, as changes: published again after a Redis outage, so that
 * what was learned meanwhile reaches the others (extending only, it cannot undo what they learned).
 */
export function sharedStateOf(pluginId: string, nowMs = Date.now()): SharedChange[] {
  const out: SharedChange[] = [];
  for (const [key, untilMs, , reason] of suspensions.entries(nowMs)) {
    const ref = parseLocalKey(key, pluginId);
    if (ref !== undefined) out.push({ kind: "suspended", ...ref, untilMs, reason });
  }
  for (const key of suspects) {
    const ref = parseLocalKey(key, pluginId);
    if (ref !== undefined) out.push({ kind: "suspect", ...ref });
  }
  return out;
}

function parseLocalKey(key: string, pluginId: string): EntryRef | undefined {
  if (!key.startsWith(`${pluginId}|`)) return undefined;
  const rest = key.slice(pluginId.length + 1);
  const bar = rest.indexOf("|");
  const env = rest.slice(0, bar);
  if (env !== "production" && env !== "sandbox") return undefined;
  return { pluginId, env, entryKey: rest.slice(bar + 1) };
}
