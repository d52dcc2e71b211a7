/**
 * Everything this process knows about one entry of one plugin configuration's environment, in one record (as
 * nginx keeps a peer's state in one struct): its place in the smooth rotation, its suspension with the reason
 * as fields, its run of failures to reach it, and whether its next readable answer should be probed for a
 * billing error. process-state.ts holds the records and is their only writer.
 *
 * One key vocabulary: an entry is named by an EntryRef; where a single string is needed (the version 1 state
 * file, log lines) entryId() builds it and parseEntryId() reads it back, nowhere else.
 */
import type { Environment } from "./config";
import type { Slot } from "./selection";

/** Which entry: the plugin configuration (Kong's plugin id), the environment and the entry's key. */
export interface EntryRef {
  pluginId: string;
  env: Environment;
  entryKey: string;
}

/**
 * Where a suspension came from. Only `local` ones (this node saw the provider's answer, or could not reach it)
 * are published again when Redis comes back: an emptied Redis plus every node's own observations is the truth.
 * `operator`: a drain asked for on this node's status listener (status/actions.ts); published again like `local`.
 */
export type SuspensionSource = "local" | "peer" | "snapshot" | "operator";

export interface SuspensionRecord {
  /** When the entry returns (ms since epoch). */
  untilMs: number;
  /** What made it (`http_429`, `quota_spent`, `insufficient_quota`, `unreachable`, `unknown`), see signals.ts. */
  cause: string;
  /** What set its length (`retry-after-ms`, `default`, `unreachable`, ...). */
  signal: string;
  source: SuspensionSource;
  /** The sentence /status and the log show ("HTTP 429, retry-after: 30"). */
  text: string;
}

/** The record is the rotation's slot: the smooth round robin moves `current` in place. */
export interface EntryRecord extends Slot {
  readonly ref: EntryRef;
  weight: number;
  current: number;
  /** The running (or last) suspension; over once untilMs <= now. */
  suspension: SuspensionRecord | undefined;
  /** Benches for being unreachable in a row (0: none). */
  streak: number;
  /** Its last status-based suspension may hide a billing error: one request should read the body. */
  suspect: boolean;
}

export function newRecord(ref: EntryRef, weight: number): EntryRecord {
  return { ref, weight, current: 0, suspension: undefined, streak: 0, suspect: false };
}

/** The running suspension at nowMs, if any. */
export function runningSuspension(record: EntryRecord, nowMs: number): SuspensionRecord | undefined {
  const s = record.suspension;
  return s !== undefined && s.untilMs > nowMs ? s : undefined;
}

/** An entry as one string: `<plugin id>|<environment>|<entry key>` (the version 1 state file's form). */
export function entryId(ref: EntryRef): string {
  return `${ref.pluginId}|${ref.env}|${ref.entryKey}`;
}

/**
 * Reads entryId() back. The environment is the first `|production|` or `|sandbox|`: a plugin id is Kong's UUID
 * or the plugin's own `anonymous-<hex>` and never holds one, while an entry key may hold `|` (in a model name).
 */
export function parseEntryId(id: string): EntryRef | undefined {
  const match = /\|(production|sandbox)\|/.exec(id);
  if (match === null || match.index === 0) return undefined;
  return {
    pluginId: id.slice(0, match.index),
    env: match[1] as Environment,
    entryKey: id.slice(match.index + match[0].length),
  };
}

export function isEnvironment(value: unknown): value is Environment {
  return value === "production" || value === "sandbox";
}
