/**
 * The one rule for what an answer does to its entry, for the log phase and the relay alike: every case without
 * Kong or the double, on a real balancer.
 */
import { gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { balancerFor } from "../../../plugins/model-based-round-robin/core/balancer";
import { normalizeConfig } from "../../../plugins/model-based-round-robin/core/config";
import {
  applyOutcome,
  type Observed,
  outcomeOf,
} from "../../../plugins/model-based-round-robin/core/outcome";

const NOW = Date.parse("2026-12-07T10:00:00Z");
let ids = 0;
const config = (extra: Record<string, unknown> = {}) =>
  normalizeConfig({
    __plugin_id: `outcome-${ids++}`,
    production_models: [
      { model: "a", endpoint: "http://a.test" },
      { model: "b", endpoint: "http://b.test" },
    ],
    ...extra,
  });
const provider = (
  status: number,
  headers: Record<string, string> = {},
  body?: Buffer,
): Extract<Observed, { kind: "answer" }> => ({
  kind: "answer",
  status,
  source: "provider",
  headers,
  body,
});
const BILLING = Buffer.from(
  JSON.stringify({ error: { code: "insufficient_quota", type: "insufficient_quota" } }),
);

describe("what an answer does to its entry (core/outcome.ts)", () => {
  it("a plain success from the provider only ends the entry's run of failures", () => {
    expect(outcomeOf(config(), provider(200), NOW)).toEqual({ bench: false, suspect: false, reached: true });
  });

  it("a 429 suspends for the configured time, or the provider's hint clamped to the limits", () => {
    expect(outcomeOf(config(), provider(429), NOW).suspension).toEqual({
      durationMs: 60_000,
      reason: "HTTP 429, no provider hint",
    });
    expect(outcomeOf(config(), provider(429, { "retry-after": "7" }), NOW).suspension?.durationMs).toBe(7000);
    const capped = outcomeOf(
      config({ max_suspend_duration: 10 }),
      provider(429, { "retry-after": "99" }),
      NOW,
    );
    expect(capped.suspension?.durationMs).toBe(10_000);
  });

  it("a 429 whose body says insufficient_quota is a billing bench, gzipped or not; no probe is needed after it", () => {
    const plain = outcomeOf(config(), { ...provider(429, {}, BILLING), readsEveryBody: true }, NOW);
    expect(plain.suspension).toEqual({
      durationMs: 3_600_000,
      reason: "HTTP 429 insufficient_quota: billing exhausted",
    });
    expect(plain.suspect).toBe(false);
    const gzipped = provider(429, { "content-encoding": "gzip" }, gzipSync(BILLING));
    expect(outcomeOf(config(), gzipped, NOW).suspension?.durationMs).toBe(3_600_000);
  });

  it("a 429 seen without its body (the log phase, unbuffered) makes the entry a billing suspect", () => {
    expect(outcomeOf(config(), provider(429), NOW).suspect).toBe(true);
    expect(outcomeOf(config({ insufficient_quota_suspend_duration: 0 }), provider(429), NOW).suspect).toBe(
      false,
    );
    // The relay reads every such body: it never needs a probe.
    expect(outcomeOf(config(), { ...provider(429), readsEveryBody: true }, NOW).suspect).toBe(false);
  });

  it("a success that says the quota is spent suspends only with proactive_suspension", () => {
    const spent = provider(200, {
      "x-ratelimit-remaining-requests": "0",
      "x-ratelimit-reset-requests": "2s",
    });
    expect(outcomeOf(config(), spent, NOW).suspension).toBeUndefined();
    expect(outcomeOf(config({ proactive_suspension: true }), spent, NOW).suspension?.durationMs).toBe(2000);
  });

  it("Kong's own 502/504 (source error) and its 503 exit bench the entry; other answers of Kong's say nothing", () => {
    const kong = (status: number, source: "kong-error" | "kong-exit"): Observed => ({
      kind: "answer",
      status,
      source,
      headers: {},
    });
    expect(outcomeOf(config(), kong(502, "kong-error"), NOW).bench).toBe(true);
    expect(outcomeOf(config(), kong(504, "kong-error"), NOW).bench).toBe(true);
    expect(outcomeOf(config(), kong(503, "kong-exit"), NOW).bench).toBe(true);
    expect(outcomeOf(config(), kong(429, "kong-exit"), NOW)).toEqual({
      bench: false,
      suspect: false,
      reached: false,
    });
    expect(outcomeOf(config({ unreachable_suspend_duration: 0 }), kong(502, "kong-error"), NOW).bench).toBe(
      false,
    );
  });

  it("a failed attempt (no connection, silence, an answer broken off) benches the entry", () => {
    expect(outcomeOf(config(), { kind: "failed" }, NOW).bench).toBe(true);
    expect(outcomeOf(config({ unreachable_suspend_duration: 0 }), { kind: "failed" }, NOW).bench).toBe(false);
  });

  it("applyOutcome carries it out on the balancer and says what to log", () => {
    const cfg = config();
    const balancer = balancerFor(cfg, undefined, NOW);
    const [a, b] = cfg.production.map((e) => e.key) as [string, string];
    const line = applyOutcome(balancer, "production", a, outcomeOf(cfg, provider(429), NOW), NOW);
    expect(line).toBe(`suspended ${a} (production) for 60000 ms: HTTP 429, no provider hint`);
    expect(balancer.peek("production", NOW)).toMatchObject({ kind: "picked", entry: { key: b } });
    // A billing suspect: the next readable answer of that entry is probed.
    expect(balancer.takeProbe("production", a)).toBe(true);
    const benched = applyOutcome(
      balancer,
      "production",
      b,
      outcomeOf(cfg, { kind: "failed" }, NOW),
      NOW,
      "gone",
    );
    expect(benched).toBe(`benched ${b} (production) for 5000 ms: gone`);
    expect(balancer.peek("production", NOW)).toMatchObject({ kind: "all-suspended" });
    // An answer ends the run of failures: the next bench starts from the shortest again.
    expect(balancer.hasStreaks()).toBe(true);
    applyOutcome(balancer, "production", b, outcomeOf(cfg, provider(200), NOW), NOW);
    expect(balancer.hasStreaks()).toBe(false);
  });
});
