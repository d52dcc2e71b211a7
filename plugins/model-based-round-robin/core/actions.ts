/**
 * Operator actions (issue 22), without I/O: which entries a selection names, and what lifting or draining them
 * does. Both go through the one writer (process-state.ts write, origin `operator`) and, through the plugin's
 * policy, to the other nodes: a drain as a suspension like any other, a lift as its own change, since a
 * suspension only ever extends a deadline. The HTTP side (token, body, answers) is ../status/actions.ts.
 */
import type { Entry, Environment, RoundRobinConfig } from "./config";
import { countSuspension } from "./metrics";
import { configOf, suspensionOf, write } from "./process-state";
import type { StatePolicy } from "./shared-state";
import { endpointOf } from "./status";

/** Which entries an action applies to: every entry of the plugin that matches all the fields given. */
export interface EntrySelection {
  pluginId: string;
  environment?: Environment;
  model?: string;
  /** As /status shows it: scheme://host:port/path. */
  endpoint?: string;
}

export type OperatorAction = { kind: "lift" } | { kind: "drain"; seconds: number };

/** One entry an action applied to, and its state afterwards (the fields /status shows). */
export interface ActedEntry {
  plugin_id: string;
  environment: Environment;
  model: string;
  endpoint: string;
  /** Whether this node's state of the entry changed (a drain never shortens a longer running suspension). */
  changed: boolean;
  suspended: boolean;
  until?: string;
  reason?: string;
  cause?: string;
  signal?: string;
}

export type ActionOutcome =
  | { kind: "done"; entries: ActedEntry[] }
  | { kind: "unknown-plugin" }
  | { kind: "no-match" };

/** The sentence a drain shows as its reason; explainReason reads cause `drained`, signal `operator` from it. */
function drainReason(seconds: number): string {
  return `drained by an operator for ${seconds} s`;
}

export function applyAction(
  selection: EntrySelection,
  action: OperatorAction,
  policyOf: (config: RoundRobinConfig) => StatePolicy,
  nowMs = Date.now(),
): ActionOutcome {
  const config = configOf(selection.pluginId);
  if (config === undefined) return { kind: "unknown-plugin" };
  const selected = selectEntries(config, selection);
  if (selected.length === 0) return { kind: "no-match" };
  const policy = policyOf(config);
  const { pluginId } = config;
  const entries = selected.map(([env, entry]): ActedEntry => {
    const ref = { pluginId, env, entryKey: entry.key };
    let changed: boolean;
    if (action.kind === "lift") {
      changed = write(ref, { kind: "lifted" }, "operator", nowMs);
      // Shared whether or not this node held anything: another node (or Redis) may.
      policy.share({ kind: "lifted", ...ref });
    } else {
      const untilMs = nowMs + action.seconds * 1000;
      const reason = drainReason(action.seconds);
      const change = { kind: "suspended", untilMs, reason, source: "operator" } as const;
      changed = write(ref, { ...change, cause: "drained", signal: "operator" }, "operator", nowMs);
      if (changed) {
        countSuspension(pluginId, env, entry.key, reason);
        policy.share({ kind: "suspended", ...ref, untilMs, reason });
      }
    }
    const running = suspensionOf(ref, nowMs);
    return {
      plugin_id: pluginId,
      environment: env,
      model: entry.model,
      endpoint: endpointOf(entry),
      changed,
      suspended: running !== undefined,
      ...(running !== undefined && {
        until: new Date(running.untilMs).toISOString(),
        reason: running.text,
        cause: running.cause,
        signal: running.signal,
      }),
    };
  });
  return { kind: "done", entries };
}

/** The plugin's entries that match every field the selection gives, in the configuration's order. */
export function selectEntries(config: RoundRobinConfig, selection: EntrySelection): [Environment, Entry][] {
  const out: [Environment, Entry][] = [];
  for (const env of ["production", "sandbox"] as const) {
    if (selection.environment !== undefined && selection.environment !== env) continue;
    for (const entry of config[env] ?? []) {
      if (selection.model !== undefined && selection.model !== entry.model) continue;
      if (selection.endpoint !== undefined && !sameEndpoint(selection.endpoint, entry)) continue;
      out.push([env, entry]);
    }
  }
  return out;
}

/** As /status shows it; a trailing slash is forgiven (the entry's key has none). */
function sameEndpoint(given: string, entry: Entry): boolean {
  return given.replace(/\/+$/, "") === endpointOf(entry);
}
