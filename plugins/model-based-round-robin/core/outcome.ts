/**
 * The one rule for what an answer does to the entry it came from, whoever saw it: the log phase (a request Kong
 * proxied to the provider itself) and the relay (every attempt it sent). Pure: `outcomeOf` decides from the
 * answer alone, `applyOutcome` carries the decision out on the balancer and says what to log.
 *
 *  - Kong, or the relay, could not reach the entry or it timed out: bench it (doubling while it keeps failing).
 *  - A provider's status in suspend_on_statuses (429 by default) suspends it for the provider's hint or the
 *    configured time; an `insufficient_quota` body makes that a billing bench. Unless the observer reads every
 *    such body (the relay), the entry becomes a billing suspect: its next request that can be proxied buffered
 *    is read whole, once (the log phase sees a body only then).
 *  - With proactive_suspension, a success that says the quota is spent suspends it until the reset.
 *  - Any answer from the provider ends its run of failures.
 *  - An answer Kong made itself (rate-limiting's 429, another plugin's exit) says nothing about the entry.
 */
import type { Balancer } from "./balancer";
import { billingSuspension, isInsufficientQuota } from "./billing";
import type { Environment, RoundRobinConfig } from "./config";
import { isUnreachable, mayBeUnreachable, type Suspension, suspensionFromResponse } from "./signals";

/** What came back from one entry, as far as the observer could see it. */
export type Observed =
  | {
      kind: "answer";
      status: number;
      /**
       * Who made the answer: `provider` (Kong's get_source() "service", or the relay reading it), or Kong
       * itself: `kong-error` (get_source() "error": its 502/504 when the upstream failed), `kong-exit` (an exit,
       * Kong's 503 "name resolution failed" among them).
       */
      source: "provider" | "kong-error" | "kong-exit";
      /** First value of each header, names in lower case. */
      headers: Record<string, string | undefined>;
      /** The answer's body when the observer could read it (the relay, a buffered probe); else undefined. */
      body?: Buffer | undefined;
      /**
       * The observer reads the body of every suspending answer (the relay): no later request needs to be read
       * whole to find a billing error. The log phase reads one only when it was proxied buffered (a probe).
       */
      readsEveryBody?: boolean;
    }
  /** The relay's attempt: no connection, a timeout of the entry's own, or an answer broken off. */
  | { kind: "failed" };

export interface Outcome {
  /** Bench as unreachable, doubling with each bench in a row. */
  bench: boolean;
  suspension?: Suspension;
  /** The suspension came from a status, seen by an observer that cannot read every body: probe the next answer. */
  suspect: boolean;
  /** The provider answered: the entry's run of failures ends. */
  reached: boolean;
}

type OutcomeConfig = Pick<
  RoundRobinConfig,
  "unreachable" | "suspendSeconds" | "suspendOnStatuses" | "hints" | "proactive" | "billingSeconds"
>;

const NOTHING: Outcome = { bench: false, suspect: false, reached: false };

export function outcomeOf(config: OutcomeConfig, observed: Observed, nowMs: number): Outcome {
  if (observed.kind === "failed") return { ...NOTHING, bench: config.unreachable.baseSeconds > 0 };
  const { status, source, headers, body } = observed;
  if (source !== "provider") {
    const kongSource = source === "kong-error" ? "error" : "exit";
    const unreachable = mayBeUnreachable(status, config) && isUnreachable(status, kongSource);
    return { ...NOTHING, bench: unreachable };
  }
  let suspension = suspensionFromResponse(status, headers, config, nowMs);
  const byStatus = suspension !== undefined && config.suspendOnStatuses.has(status);
  const billing = byStatus && config.billingSeconds > 0;
  if (billing && body !== undefined && isInsufficientQuota(body, headers["content-encoding"])) {
    suspension = billingSuspension(status, config.billingSeconds);
  }
  return {
    bench: false,
    ...(suspension !== undefined && { suspension }),
    suspect: billing && observed.readsEveryBody !== true,
    reached: true,
  };
}

/** Carries the outcome out for the entry; returns the line for Kong's error log, if any. */
export function applyOutcome(
  balancer: Balancer,
  env: Environment,
  entryKey: string,
  outcome: Outcome,
  nowMs: number,
  why?: string,
): string | undefined {
  if (outcome.bench) {
    const benchMs = balancer.benchUnreachable(env, entryKey, nowMs);
    if (benchMs <= 0) return undefined;
    return `benched ${entryKey} (${env}) for ${benchMs} ms: ${why ?? "it could not be reached"}`;
  }
  if (outcome.reached && balancer.hasStreaks()) balancer.reached(env, entryKey);
  if (outcome.suspension === undefined) return undefined;
  const { durationMs, reason } = outcome.suspension;
  balancer.suspend(env, entryKey, durationMs, nowMs, reason);
  if (outcome.suspect) balancer.markSuspect(env, entryKey);
  return `suspended ${entryKey} (${env}) for ${durationMs} ms: ${reason}`;
}
