/**
 * What a restart must not forget, as plain data (persistence.ts keeps it in the state file): one row per entry
 * record worth keeping. Version 2 has the record's fields, the suspension's reason as fields; version 1 (the
 * format before the entry record: five lists keyed by strings, the reason a sentence) is still read.
 *
 * The file is read when the plugin is loaded, before Kong has started any instance, so no configuration is
 * known yet: rows are shape-checked here and kept (at most MAX_PENDING_ROWS) until their plugin's configuration
 * arrives, then handed to the one writer (process-state.ts write), which checks them against it like anything
 * else that arrives. Rows of a plugin that never comes back are written again as they were, and dropped a day
 * after they were read.
 */
import type { Environment } from "./config";
import {
  type EntryRef,
  isEnvironment,
  parseEntryId,
  runningSuspension,
  type SuspensionSource,
} from "./entry-record";
import { isConfigured, MAX_REASON_CHARS, records, whenConfigured, write } from "./process-state";

export interface SuspensionRow {
  until: number;
  cause: string;
  signal: string;
  source: SuspensionSource;
  text: string;
}

export interface StateRow {
  plugin: string;
  env: Environment;
  entry: string;
  /** The smooth rotation's current weight. */
  position?: number;
  suspension?: SuspensionRow;
  streak?: number;
  suspect?: boolean;
}

export interface StateSnapshot {
  version: 2;
  entries: StateRow[];
}

/** Rows read from the file and kept for a configuration still to come; beyond this, the rest are dropped. */
export const MAX_PENDING_ROWS = 10_000;
/** A plugin id or entry key longer than this is not one the plugin makes. */
const MAX_ID_CHARS = 2048;
/** Rows kept for a plugin that never comes back are dropped this long after they were read. */
const PENDING_FOR_MS = 24 * 3600 * 1000;

const pending = new Map<string, StateRow[]>();
let pendingCount = 0;
let pendingSinceMs = 0;

whenConfigured((pluginId, nowMs) => {
  const rows = pending.get(pluginId);
  if (rows === undefined) return;
  pending.delete(pluginId);
  pendingCount -= rows.length;
  for (const row of rows) apply(row, nowMs);
});

/** Every record worth keeping, and the rows still waiting for their configuration. */
export function exportState(nowMs = Date.now()): StateSnapshot {
  const entries: StateRow[] = [];
  for (const record of records()) {
    const { pluginId: plugin, env, entryKey: entry } = record.ref;
    const running = runningSuspension(record, nowMs);
    if (running === undefined && record.current === 0 && record.streak === 0 && !record.suspect) continue;
    entries.push({
      plugin,
      env,
      entry,
      ...(record.current !== 0 && { position: record.current }),
      ...(running !== undefined && {
        suspension: {
          until: running.untilMs,
          cause: running.cause,
          signal: running.signal,
          source: running.source,
          text: running.text,
        },
      }),
      ...(record.streak > 0 && { streak: record.streak }),
      ...(record.suspect && { suspect: true }),
    });
  }
  if (pendingCount > 0 && nowMs - pendingSinceMs >= PENDING_FOR_MS) {
    pending.clear();
    pendingCount = 0;
  }
  for (const rows of pending.values()) {
    for (const row of rows) {
      const { suspension, ...rest } = row;
      entries.push(suspension === undefined || suspension.until <= nowMs ? rest : row);
    }
  }
  return { version: 2, entries };
}

/**
 * Takes in a snapshot written before a restart, version 2 or 1. A malformed row is skipped alone (`log` says
 * which, once per kind of problem); anything that is not a snapshot at all is refused with the reason.
 */
export function importState(
  snapshot: unknown,
  nowMs = Date.now(),
  log: (message: string) => void = () => {},
  { positions = true }: { positions?: boolean } = {},
): void {
  const rows = rowsOf(snapshot);
  if (typeof rows === "string") {
    log(`ignored the state file: ${rows}`);
    return;
  }
  const problems = new Map<string, number>();
  pendingSinceMs = nowMs;
  for (const value of rows) {
    const row = asRow(value);
    if (typeof row === "string") {
      problems.set(row, (problems.get(row) ?? 0) + 1);
      continue;
    }
    if (isConfigured(row.plugin)) {
      apply(positions ? row : withoutPosition(row), nowMs);
    } else if (pendingCount < MAX_PENDING_ROWS) {
      const mine = pending.get(row.plugin) ?? [];
      mine.push(row);
      pending.set(row.plugin, mine);
      pendingCount++;
    } else {
      problems.set(
        `more than ${MAX_PENDING_ROWS} rows`,
        (problems.get(`more than ${MAX_PENDING_ROWS} rows`) ?? 0) + 1,
      );
    }
  }
  for (const [problem, n] of problems) log(`skipped ${n} row(s) of the state file: ${problem}`);
}

function withoutPosition(row: StateRow): StateRow {
  const { position: _position, ...rest } = row;
  return rest;
}

/** Hands a row's fields to the one writer, which checks them against the plugin's configuration. */
function apply(row: StateRow, nowMs: number): void {
  const ref: EntryRef = { pluginId: row.plugin, env: row.env, entryKey: row.entry };
  const from = "the state file";
  if (row.position !== undefined) write(ref, { kind: "position", current: row.position }, from, nowMs);
  if (row.streak !== undefined) write(ref, { kind: "streak", inARow: row.streak }, from, nowMs);
  if (row.suspect === true) write(ref, { kind: "suspect" }, from, nowMs);
  const s = row.suspension;
  if (s !== undefined) {
    const change = { untilMs: s.until, reason: s.text, source: s.source, cause: s.cause, signal: s.signal };
    write(ref, { kind: "suspended", ...change }, from, nowMs);
  }
}

/** The rows of a snapshot of either version, or why it is none. */
function rowsOf(value: unknown): unknown[] | string {
  if (value === null || typeof value !== "object") return "not a JSON object";
  const v = value as { version?: unknown; entries?: unknown };
  if (v.version === 2) return Array.isArray(v.entries) ? v.entries : "version 2 without an entries list";
  if (v.version === 1) return rowsOfVersion1(value as Partial<Record<string, unknown>>);
  return `unknown version ${JSON.stringify(v.version)}`;
}

/**
 * Version 1: suspensions [id, until, group, reason?], suspects [id], streaks [plugin, id, n], positions
 * [plugin|env, [entry, current][]], with ids as entryId() builds them. Each becomes a version 2 row (the source of
 * its suspensions unknown: `snapshot`, never published again), malformed ones passed on to be counted.
 */
function rowsOfVersion1(v: Partial<Record<string, unknown>>): unknown[] {
  const list = (name: string): unknown[] => (Array.isArray(v[name]) ? (v[name] as unknown[]) : []);
  const rows: unknown[] = [];
  const ref = (id: unknown) => (typeof id === "string" ? parseEntryId(id) : undefined);
  const row = (id: unknown, fields: object) => {
    const r = ref(id);
    rows.push(
      r === undefined ? UNPARSABLE_ID : { plugin: r.pluginId, env: r.env, entry: r.entryKey, ...fields },
    );
  };
  for (const item of list("suspensions")) {
    const [id, until, , reason] = Array.isArray(item) ? item : [];
    const text = typeof reason === "string" ? reason : "";
    row(id, { suspension: { until, cause: "", signal: "", source: "snapshot", text } });
  }
  for (const id of list("suspects")) row(id, { suspect: true });
  for (const item of list("streaks")) {
    const [, id, n] = Array.isArray(item) ? item : [];
    row(id, { streak: n });
  }
  for (const item of list("positions")) {
    const [group, slots] = Array.isArray(item) ? item : [];
    if (typeof group !== "string" || !Array.isArray(slots)) {
      rows.push(item);
      continue;
    }
    for (const slot of slots) {
      const [entry, current] = Array.isArray(slot) ? slot : [];
      row(typeof entry === "string" ? `${group}|${entry}` : undefined, { position: current });
    }
  }
  return rows;
}

/** A version 1 row whose entry id is not one entryId() builds. */
class RowProblem {
  constructor(readonly why: string) {}
}
const UNPARSABLE_ID = new RowProblem("an entry id (plugin|environment|entry) that does not parse");

/** A row checked for shape (types and string lengths), or what is wrong with it. Ranges are the writer's. */
function asRow(value: unknown): StateRow | string {
  if (value instanceof RowProblem) return value.why;
  if (value === null || typeof value !== "object" || Array.isArray(value)) return "not an object";
  const r = value as Partial<Record<keyof StateRow, unknown>>;
  if (!isId(r.plugin) || !isId(r.entry)) return "a plugin id or entry key that is not a short string";
  if (!isEnvironment(r.env)) return "an environment other than production or sandbox";
  const row: StateRow = { plugin: r.plugin, env: r.env, entry: r.entry };
  if (r.position !== undefined) {
    if (typeof r.position !== "number" || !Number.isFinite(r.position))
      return "a position that is not a number";
    row.position = r.position;
  }
  if (r.streak !== undefined) {
    if (!Number.isInteger(r.streak) || (r.streak as number) < 0) return "a streak that is not a count";
    row.streak = r.streak as number;
  }
  if (r.suspect !== undefined) {
    if (typeof r.suspect !== "boolean") return "a suspect mark that is not true or false";
    row.suspect = r.suspect;
  }
  if (r.suspension !== undefined) {
    const s = r.suspension as Partial<Record<keyof SuspensionRow, unknown>> | null;
    if (s === null || typeof s !== "object") return "a suspension that is not an object";
    if (typeof s.until !== "number" || Number.isNaN(s.until))
      return "a suspension deadline that is not a number";
    row.suspension = {
      until: s.until,
      cause: typeof s.cause === "string" ? s.cause : "",
      signal: typeof s.signal === "string" ? s.signal : "",
      source: s.source === "local" || s.source === "peer" || s.source === "operator" ? s.source : "snapshot",
      text: typeof s.text === "string" ? s.text.slice(0, MAX_REASON_CHARS) : "",
    };
  }
  return row;
}

function isId(value: unknown): value is string {
  return typeof value === "string" && value.length > 0 && value.length <= MAX_ID_CHARS;
}
