/**
 * Billing exhaustion: OpenAI answers 429 with `"code": "insufficient_quota"` when the account behind a key has
 * no credit left. Unlike a rate limit it does not pass in seconds, so the entry is benched for a long time.
 * The signal is only in the response body, which the log phase sees only for requests Kong proxied buffered;
 * the body may be compressed (clients ask for gzip) and is read defensively: anything unreadable is "no".
 */
import { brotliDecompressSync, gunzipSync, inflateSync } from "node:zlib";

/** Error bodies are small; a larger body is not an error body, and is never inflated past this. */
const MAX_ERROR_BODY_BYTES = 64 * 1024;
const MARKER = "insufficient_quota";

/**
 * True when the body is an OpenAI-shaped error whose code or type is `insufficient_quota`. The encoding is the
 * one the client was told, which nginx's own gzip could have made up: gzip's magic bytes are trusted over it.
 */
export function isInsufficientQuota(body: Buffer, contentEncoding?: string): boolean {
  const gzipped = body.length >= 2 && body[0] === 0x1f && body[1] === 0x8b;
  const declared = (contentEncoding ?? "identity").trim().toLowerCase();
  const encoding = gzipped ? "gzip" : declared === "gzip" || declared === "x-gzip" ? "identity" : declared;
  const text = decode(body, encoding);
  if (text === undefined || !text.includes(MARKER)) return false;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return false;
  }
  const error = (parsed as { error?: unknown } | null)?.error;
  if (error === null || typeof error !== "object") return false;
  const { code, type } = error as { code?: unknown; type?: unknown };
  return code === MARKER || type === MARKER;
}

/**
 * What an `insufficient_quota` answer does to its entry: a bench of insufficient_quota_suspend_duration, not
 * clamped by max_suspend_duration (billing does not come back in seconds).
 */
export function billingSuspension(
  status: number,
  billingSeconds: number,
): { durationMs: number; reason: string } {
  return {
    durationMs: billingSeconds * 1000,
    reason: `HTTP ${status} insufficient_quota: billing exhausted`,
  };
}

function decode(body: Buffer, encoding: string): string | undefined {
  const options = { maxOutputLength: MAX_ERROR_BODY_BYTES };
  try {
    if (encoding === "identity" || encoding === "") {
      return body.length > MAX_ERROR_BODY_BYTES ? undefined : body.toString("utf8");
    }
    if (encoding === "gzip") return gunzipSync(body, options).toString("utf8");
    if (encoding === "deflate") return inflateSync(body, options).toString("utf8");
    if (encoding === "br") return brotliDecompressSync(body, options).toString("utf8");
  } catch {
    // Corrupt, truncated or over the limit: not a readable error body.
  }
  return undefined;
}
