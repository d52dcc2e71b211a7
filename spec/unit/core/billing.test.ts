import { brotliCompressSync, deflateSync, gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { isInsufficientQuota } from "../../../plugins/model-based-round-robin/core/billing";

/** OpenAI's 429 when the account has no credit left. */
const OPENAI_BILLING = JSON.stringify({
  error: {
    message:
      "You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.",
    type: "insufficient_quota",
    param: null,
    code: "insufficient_quota",
  },
});
/** OpenAI's 429 for a rate limit: the same status, a different code. */
const OPENAI_RATE_LIMIT = JSON.stringify({
  error: {
    message:
      "Rate limit reached for gpt-4o in organization org-xyz on requests per min (RPM): Limit 500, Used 500, Requested 1. Please try again in 120ms.",
    type: "requests",
    param: null,
    code: "rate_limit_exceeded",
  },
});

const text = (s: string) => Buffer.from(s, "utf8");

describe("isInsufficientQuota", () => {
  it("recognises OpenAI's billing error by its code or its type", () => {
    expect(isInsufficientQuota(text(OPENAI_BILLING))).toBe(true);
    expect(isInsufficientQuota(text('{"error":{"type":"insufficient_quota","code":null}}'))).toBe(true);
    expect(isInsufficientQuota(text('{"error":{"code":"insufficient_quota"}}'))).toBe(true);
  });

  it("does not take a rate limit, or a message that merely mentions the word, for billing", () => {
    expect(isInsufficientQuota(text(OPENAI_RATE_LIMIT))).toBe(false);
    expect(isInsufficientQuota(text('{"error":{"message":"not insufficient_quota","code":"x"}}'))).toBe(
      false,
    );
    expect(isInsufficientQuota(text('{"code":"insufficient_quota"}'))).toBe(false);
  });

  it("reads gzip, deflate and br bodies by their content-encoding", () => {
    expect(isInsufficientQuota(gzipSync(OPENAI_BILLING), "gzip")).toBe(true);
    expect(isInsufficientQuota(deflateSync(OPENAI_BILLING), "deflate")).toBe(true);
    expect(isInsufficientQuota(brotliCompressSync(OPENAI_BILLING), "br")).toBe(true);
    expect(isInsufficientQuota(gzipSync(OPENAI_BILLING), " GZIP ")).toBe(true);
  });

  it("trusts gzip's magic bytes over a content-encoding that nginx's own gzip may have set", () => {
    expect(isInsufficientQuota(text(OPENAI_BILLING), "gzip")).toBe(true);
    expect(isInsufficientQuota(gzipSync(OPENAI_BILLING))).toBe(true);
    expect(isInsufficientQuota(gzipSync(OPENAI_BILLING), "identity")).toBe(true);
  });

  it("answers no, without throwing, to anything it cannot read", () => {
    const gz = gzipSync(OPENAI_BILLING);
    expect(isInsufficientQuota(gz.subarray(0, gz.length / 2), "gzip")).toBe(false);
    expect(isInsufficientQuota(text(OPENAI_BILLING), "compress")).toBe(false);
    expect(isInsufficientQuota(text(OPENAI_BILLING), "br")).toBe(false);
    expect(isInsufficientQuota(Buffer.alloc(0))).toBe(false);
    expect(isInsufficientQuota(text("insufficient_quota"))).toBe(false);
    expect(isInsufficientQuota(text('{"error":"insufficient_quota"}'))).toBe(false);
    expect(isInsufficientQuota(text('{"error":null} insufficient_quota'))).toBe(false);
    expect(isInsufficientQuota(Buffer.from([0xff, 0xfe, 0x00]))).toBe(false);
  });

  it("never inflates past 64 KiB: a bomb is refused, not expanded", () => {
    const padded = JSON.stringify({ error: { code: "insufficient_quota", pad: "x".repeat(200_000) } });
    expect(isInsufficientQuota(gzipSync(padded), "gzip")).toBe(false);
    expect(isInsufficientQuota(text(padded))).toBe(false);
  });
});
