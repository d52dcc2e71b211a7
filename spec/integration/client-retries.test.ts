/**
 * What a client is told to wait when every entry is out, and what the official openai client (v6) does with it:
 * it retries a 429 and every 5xx twice by default, sleeping exactly what `retry-after-ms` says before each retry
 * (no upper bound), so the plugin caps what it advertises with `max_retry_after`.
 */
import OpenAI from "openai";
import { describe, expect, it, vi } from "vitest";
import { type Bed, BILLING_EXHAUSTED, chat, DIRECT, loadPlugin, pause, useBed } from "../support/harness";

const HELLO = { model: "gpt-4o", messages: [{ role: "user" as const, content: "Hello" }] };

describe("the all-suspended answer and the clients that read it", () => {
  let bed: Bed;
  let a: Bed["providers"][number];
  let b: Bed["providers"][number];

  useBed({ providers: 2 }, (started) => {
    bed = started;
    [a, b] = started.providers as [typeof a, typeof b];
  });

  /** Every entry out for an hour: each provider answers 429 with `retry-after: 3600` once. */
  async function suspendEverythingForAnHour(pluginConfig: Record<string, unknown> = {}) {
    await loadPlugin(bed.kong, {
      ...DIRECT,
      production_models: [
        { model: "m1", endpoint: a.url },
        { model: "m2", endpoint: b.url },
      ],
      ...pluginConfig,
    });
    for (const provider of [a, b]) provider.failNext({ status: 429, headers: { "retry-after": "3600" } });
    expect((await chat(bed.kong, HELLO)).status).toBe(429);
    expect((await chat(bed.kong, HELLO)).status).toBe(429);
    await bed.kong.settled();
  }

  function client(maxRetries?: number): OpenAI {
    return new OpenAI({
      baseURL: `${bed.kong.proxyUrl}/openai/v1`,
      apiKey: "client-key",
      ...(maxRetries !== undefined && { maxRetries }),
    });
  }

  const accessEvents = () => bed.kong.pdkCalls.events.access ?? 0;

  it("advertises at most 60 s when every entry is billing-benched for 3600 s", async () => {
    await loadPlugin(bed.kong, {
      ...DIRECT,
      production_models: [
        { model: "m1", endpoint: a.url },
        { model: "m2", endpoint: b.url },
      ],
      min_suspend_duration: 0,
    });
    // The first insufficient_quota suspends briefly (its body cannot be read unbuffered); the next request to the
    // entry is read whole, and its insufficient_quota benches the entry for insufficient_quota_suspend_duration.
    for (const provider of [a, b]) {
      provider.failNext({
        status: 429,
        body: BILLING_EXHAUSTED,
        headers: { "retry-after-ms": "50" },
        times: 2,
      });
    }
    for (let i = 0; i < 2; i++) expect((await chat(bed.kong, HELLO)).status).toBe(429);
    await bed.kong.settled();
    await pause(100);
    for (let i = 0; i < 2; i++)
      expect((await chat(bed.kong, HELLO)).json.error.code).toBe("insufficient_quota");
    await bed.kong.settled();
    const warnings = bed.kong.logs.filter((l) => /insufficient_quota: billing exhausted/.test(l.message));
    expect(warnings.map((l) => l.message)).toEqual([
      expect.stringContaining("for 3600000 ms"),
      expect.stringContaining("for 3600000 ms"),
    ]);

    const reply = await chat(bed.kong, HELLO);
    expect(reply.status).toBe(503);
    expect(reply.headers["retry-after"]).toBe("60");
    expect(reply.headers["retry-after-ms"]).toBe("60000");
    expect(reply.json.error).toMatchObject({
      code: "all_models_suspended",
      message: "every production model is suspended after exceeding its quota; retry in 60 s",
    });
  });

  it("openai v6: a 503 is an InternalServerError after 2 retries, each after exactly retry-after-ms", async () => {
    await suspendEverythingForAnHour({ max_retry_after: 1 });
    const before = accessEvents();
    const started = performance.now();
    const error = await client()
      .chat.completions.create(HELLO)
      .catch((e: unknown) => e);
    const elapsed = performance.now() - started;
    expect(error).toBeInstanceOf(OpenAI.InternalServerError);
    expect((error as InstanceType<typeof OpenAI.InternalServerError>).status).toBe(503);
    expect(accessEvents() - before).toBe(3); // the call and its 2 default retries
    // Two sleeps of 1000 ms (retry-after-ms), not an hour: at least 2 s (a lower bound only; a busy machine can
    // only add to it, and an hour's sleep would end in the test's timeout).
    expect(elapsed).toBeGreaterThanOrEqual(2000);
  });

  it("openai v6: a 429 (all_suspended_status 429) is a RateLimitError, retried the same way", async () => {
    await suspendEverythingForAnHour({ max_retry_after: 1, all_suspended_status: 429 });
    const before = accessEvents();
    const error = await client(1)
      .chat.completions.create(HELLO)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.RateLimitError);
    expect((error as InstanceType<typeof OpenAI.RateLimitError>).error).toMatchObject({
      code: "all_models_suspended",
    });
    expect(accessEvents() - before).toBe(2);
  });

  it("openai v6 honours a retry-after-ms over a minute: told 120 s, it sleeps 120 s (not its own 0.5-8 s backoff)", async () => {
    await suspendEverythingForAnHour({ max_retry_after: 120 });
    const before = accessEvents();
    const timers = vi.spyOn(globalThis, "setTimeout");
    try {
      void client()
        .chat.completions.create(HELLO)
        .catch(() => undefined);
      await pause(3000);
      expect(accessEvents() - before).toBe(1);
      const sleep = timers.mock.calls.findIndex(([, ms]) => ms === 120_000);
      expect(sleep).toBeGreaterThanOrEqual(0);
      // The SDK's sleep cannot be aborted: cancel it, so that nothing outlives the test.
      clearTimeout(timers.mock.results[sleep]?.value as NodeJS.Timeout);
    } finally {
      timers.mockRestore();
    }
  });
});
