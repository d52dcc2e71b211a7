import { describe, expect, it } from "vitest";
import { normalizeConfig } from "../../../plugins/model-based-round-robin/core/config";
import {
  isUnreachable,
  needsHeaders,
  parseGoDuration,
  parseRetryAfter,
  providerHint,
  suspensionFromResponse,
} from "../../../plugins/model-based-round-robin/core/signals";

const NOW = Date.parse("2026-11-25T10:00:00Z");
const config = (extra: Record<string, unknown> = {}) =>
  normalizeConfig({ production_models: [{ model: "m", endpoint: "http://e.test" }], ...extra });

describe("quota signals from providers", () => {
  it("suspends on 429 for the configured duration when the provider gives no hint", () => {
    expect(suspensionFromResponse(429, {}, config(), NOW)).toEqual({
      durationMs: 60_000,
      reason: "HTTP 429, no provider hint",
    });
    expect(suspensionFromResponse(500, {}, config(), NOW)).toBeUndefined();
    expect(suspensionFromResponse(200, {}, config(), NOW)).toBeUndefined();
  });

  it("suspends nothing when the duration is 0, and reads headers only for a suspending status", () => {
    expect(
      suspensionFromResponse(
        429,
        { "retry-after": "5" },
        config({ on_quota_exceed_suspend_duration: 0 }),
        NOW,
      ),
    ).toBeUndefined();
    expect(needsHeaders(429, config())).toBe(true);
    expect(needsHeaders(200, config())).toBe(false);
    expect(needsHeaders(200, config({ proactive_suspension: true }))).toBe(true); // a success may say the quota is spent
    expect(needsHeaders(404, config())).toBe(false);
    expect(needsHeaders(503, config({ suspend_on_statuses: [429, 503] }))).toBe(true);
  });

  it("reads OpenAI's retry-after-ms first, then retry-after", () => {
    expect(providerHint({ "retry-after-ms": "1500", "retry-after": "2" }, NOW)?.durationMs).toBe(1500);
    expect(providerHint({ "retry-after": "2" }, NOW)?.durationMs).toBe(2000);
  });

  it("reads Azure OpenAI's x-ms-retry-after-ms", () => {
    expect(providerHint({ "x-ms-retry-after-ms": "850", "retry-after": "1" }, NOW)?.durationMs).toBe(850);
  });

  it("reads retry-after as an HTTP date", () => {
    expect(providerHint({ "retry-after": "Wed, 25 Nov 2026 10:00:30 GMT" }, NOW)?.durationMs).toBe(30_000);
  });

  it("reads OpenAI's x-ratelimit-reset-* only when the matching remaining count is 0", () => {
    const openai = {
      "x-ratelimit-limit-requests": "10000",
      "x-ratelimit-remaining-requests": "9999",
      "x-ratelimit-reset-requests": "6ms",
      "x-ratelimit-limit-tokens": "30000",
      "x-ratelimit-remaining-tokens": "0",
      "x-ratelimit-reset-tokens": "6m0s",
    };
    expect(providerHint(openai, NOW)).toEqual({
      durationMs: 360_000,
      reason: "x-ratelimit-reset-tokens: 6m0s",
    });
    expect(providerHint({ ...openai, "x-ratelimit-remaining-tokens": "12" }, NOW)).toBeUndefined();
  });

  it("reads Anthropic's RFC 3339 reset times when the matching remaining count is 0", () => {
    const anthropic = {
      "anthropic-ratelimit-requests-limit": "50",
      "anthropic-ratelimit-requests-remaining": "0",
      "anthropic-ratelimit-requests-reset": "2026-11-25T10:00:12Z",
      "anthropic-ratelimit-tokens-remaining": "1000",
      "anthropic-ratelimit-tokens-reset": "2026-11-25T10:05:00Z",
    };
    expect(providerHint(anthropic, NOW)?.durationMs).toBe(12_000);
  });

  it("clamps hints to min and max, and ignores them when honor_retry_hints is off", () => {
    const c = config({ min_suspend_duration: 2, max_suspend_duration: 10 });
    expect(suspensionFromResponse(429, { "retry-after-ms": "100" }, c, NOW)?.durationMs).toBe(2000);
    expect(suspensionFromResponse(429, { "retry-after": "3600" }, c, NOW)?.durationMs).toBe(10_000);
    expect(
      suspensionFromResponse(429, { "retry-after": "5" }, config({ honor_retry_hints: false }), NOW)
        ?.durationMs,
    ).toBe(60_000);
  });

  it.each([
    [{ "retry-after-ms": "soon" }],
    [{ "retry-after-ms": "-5" }],
    [{ "retry-after": "tomorrow-ish" }],
    [{ "retry-after": "Wed, 99 Foo 2026 99:99:99 GMT" }],
    [{ "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "6 minutes" }],
    [{ "anthropic-ratelimit-requests-remaining": "0", "anthropic-ratelimit-requests-reset": "later" }],
    [{ "retry-after": ["", "x"] }],
  ])("ignores malformed hints and falls back to the configured duration: %j", (headers) => {
    expect(suspensionFromResponse(429, headers, config(), NOW)?.durationMs).toBe(60_000);
  });

  it("suspends proactively after a success that says the quota is spent, until its reset", () => {
    const spent = { "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1.5s" };
    const proactive = config({ proactive_suspension: true });
    expect(suspensionFromResponse(200, spent, proactive, NOW)).toEqual({
      durationMs: 1500,
      reason: "HTTP 200 with quota spent, x-ratelimit-reset-requests: 1.5s",
    });
    expect(
      suspensionFromResponse(200, { ...spent, "x-ratelimit-remaining-requests": "3" }, proactive, NOW),
    ).toBeUndefined();
    expect(suspensionFromResponse(200, spent, config(), NOW)).toBeUndefined();
    expect(suspensionFromResponse(200, { "retry-after": "5" }, proactive, NOW)).toBeUndefined();
  });

  it("parses Go-style durations and rejects others", () => {
    expect(parseGoDuration("1s")).toBe(1000);
    expect(parseGoDuration("12ms")).toBe(12);
    expect(parseGoDuration("1h2m3.5s")).toBe(3_723_500);
    expect(parseGoDuration("20")).toBeUndefined();
    expect(parseRetryAfter("0", NOW)).toBe(0);
  });
});

describe("Kong could not reach the entry", () => {
  it("is Kong's own 502, 503 or 504 error page, or its 503 exit for a name that does not resolve", () => {
    expect([502, 503, 504].map((status) => isUnreachable(status, "error"))).toEqual([true, true, true]);
    expect(isUnreachable(503, "exit")).toBe(true);
    expect(isUnreachable(502, "exit")).toBe(false);
    expect(isUnreachable(500, "exit")).toBe(false);
    expect([502, 503, 504].map((status) => isUnreachable(status, "service"))).toEqual([false, false, false]);
  });
});
