import { randomUUID } from "node:crypto";
import { request as httpRequest } from "node:http";
import { request } from "undici";
import { describe, expect, it } from "vitest";
import { type Bed, BILLING_EXHAUSTED, chat, DIRECT, llmService, pause, useBed } from "../support/harness";

const RATE_LIMIT = {
  error: {
    message: "Rate limit reached for requests",
    type: "requests",
    param: null,
    code: "rate_limit_exceeded",
  },
};
const HELLO = { model: "gpt-4o", messages: [{ role: "user", content: "Hello" }] };

describe("billing exhaustion (insufficient_quota) benches an entry for a long time", () => {
  let bed: Bed;
  let a: Bed["providers"][number];
  let b: Bed["providers"][number];

  useBed({ providers: 2 }, (started) => {
    bed = started;
    [a, b] = started.providers as [typeof a, typeof b];
  });

  async function configure(pluginConfig: Record<string, unknown>) {
    const config = llmService({ on_quota_exceed_suspend_duration: 1, ...DIRECT, ...pluginConfig }) as {
      services: { plugins: { id?: string }[] }[];
    };
    const plugin = config.services[0]?.plugins[0];
    if (plugin === undefined) throw new Error("llmService changed shape");
    plugin.id = randomUUID();
    await bed.kong.loadConfig(config);
  }

  const twoModels = () => ({
    production_models: [
      { model: "m1", endpoint: a.url },
      { model: "m2", endpoint: b.url },
    ],
  });

  /** The model of each answer, or its status when it is not a 200. */
  async function models(n: number): Promise<(string | number)[]> {
    const out: (string | number)[] = [];
    for (let i = 0; i < n; i++) {
      const reply = await chat(bed.kong, HELLO);
      out.push(reply.status === 200 ? reply.json.model : reply.status);
    }
    return out;
  }

  const buffered = () => bed.kong.pdkCalls.byPhase("access")["kong.service.request.enable_buffering"] ?? 0;
  const warnings = () => bed.kong.logs.filter((l) => l.level === "warn").map((l) => l.message);

  it("suspends briefly on the first 429, reads the next answer of that entry whole, and benches it on insufficient_quota", async () => {
    await configure(twoModels());
    a.failNext({ status: 429, body: BILLING_EXHAUSTED, times: 2 });

    const first = await chat(bed.kong, HELLO);
    await bed.kong.settled();
    // The first answer reaches the client as the provider sent it, streamed through: nothing to read it with.
    expect(first.status).toBe(429);
    expect(first.json.error.code).toBe("insufficient_quota");
    expect(buffered()).toBe(0);

    await pause(1100);
    bed.kong.pdkCalls.reset();
    expect(await models(2)).toEqual(["m2", 429]);
    await bed.kong.settled();
    // Only the request that went to the suspect entry was proxied buffered, and log read its body once.
    expect(buffered()).toBe(1);
    expect(bed.kong.pdkCalls.byPhase("log")["kong.service.response.get_raw_body"]).toBe(1);
    expect(warnings().at(-1)).toMatch(/for 3600000 ms: HTTP 429 insufficient_quota/);

    await pause(1100);
    expect(await models(4)).toEqual(["m2", "m2", "m2", "m2"]);
    expect(a.requests).toHaveLength(2);
  });

  it("reads a gzip-compressed error body, as OpenAI sends it to clients that accept gzip", async () => {
    await configure({ ...twoModels(), insufficient_quota_suspend_duration: 120 });
    const gzipped = { headers: { "accept-encoding": "gzip" } };
    a.failNext({ status: 429, body: BILLING_EXHAUSTED, times: 2, gzip: true });
    await chat(bed.kong, HELLO, gzipped);
    await bed.kong.settled();
    await pause(1100);
    await chat(bed.kong, HELLO, gzipped);
    const probe = await chat(bed.kong, HELLO, gzipped);
    await bed.kong.settled();
    expect(probe.status).toBe(429);
    expect(probe.headers["content-encoding"]).toBe("gzip");
    expect(warnings().at(-1)).toMatch(/for 120000 ms: HTTP 429 insufficient_quota/);
  });

  it("treats a probe answered with a plain rate limit as a rate limit, and probes again after it", async () => {
    await configure(twoModels());
    a.failNext({ status: 429, body: RATE_LIMIT, times: 2 });
    await chat(bed.kong, HELLO);
    await bed.kong.settled();
    await pause(1100);
    bed.kong.pdkCalls.reset();
    expect(await models(2)).toEqual(["m2", 429]);
    await bed.kong.settled();
    expect(warnings().at(-1)).toMatch(/for 1000 ms: HTTP 429, no provider hint/);
    await pause(1100);
    expect(await models(2)).toEqual(["m2", "m1"]);
    expect(buffered()).toBe(2);
  });

  it("probes once: after a good answer the entry's requests are proxied unbuffered again", async () => {
    await configure(twoModels());
    a.failNext({ status: 429, body: RATE_LIMIT });
    await chat(bed.kong, HELLO);
    await bed.kong.settled();
    await pause(1100);
    bed.kong.pdkCalls.reset();
    expect(await models(6)).toEqual(["m2", "m1", "m2", "m1", "m2", "m1"]);
    expect(buffered()).toBe(1);
  });

  it("never buffers a streamed request: the suspect entry streams, and the next plain request probes it", async () => {
    await configure({ production_models: [{ model: "m1", endpoint: a.url }] });
    a.failNext({ status: 429, body: BILLING_EXHAUSTED });
    await chat(bed.kong, HELLO);
    await bed.kong.settled();
    await pause(1100);
    bed.kong.pdkCalls.reset();

    const res = await request(`${bed.kong.proxyUrl}/openai/v1/chat/completions`, {
      method: "POST",
      headers: { host: "api.example.test", "content-type": "application/json" },
      body: JSON.stringify({ ...HELLO, stream: true }),
    });
    const arrivals: number[] = [];
    for await (const _chunk of res.body) arrivals.push(Date.now());
    expect(res.headers["content-type"]).toMatch(/text\/event-stream/);
    expect(arrivals.length).toBeGreaterThan(3);
    await bed.kong.settled();
    expect(buffered()).toBe(0);

    expect((await chat(bed.kong, HELLO)).status).toBe(200);
    expect(buffered()).toBe(1);
  });

  /** A chat request with `filler` header lines before its `Upgrade: websocket`; resolves to the status. */
  function chatWithUpgradeAfter(filler: number): Promise<number | undefined> {
    const headers = Object.fromEntries(Array.from({ length: filler }, (_, i) => [`h${i}`, "1"]));
    const body = JSON.stringify(HELLO);
    return new Promise<number | undefined>((resolveStatus, reject) => {
      const url = new URL(`${bed.kong.proxyUrl}/openai/v1/chat/completions`);
      const req = httpRequest(
        {
          host: url.hostname,
          port: url.port,
          path: url.pathname,
          method: "POST",
          headers: {
            host: "api.example.test",
            "content-type": "application/json",
            "content-length": String(Buffer.byteLength(body)),
            ...headers,
            upgrade: "websocket",
          },
        },
        (res) => {
          res.resume();
          res.on("end", () => resolveStatus(res.statusCode));
        },
      );
      req.on("error", reject);
      req.end(body);
    });
  }

  async function suspectM1() {
    await configure(twoModels());
    a.failNext({ status: 429, body: BILLING_EXHAUSTED, times: 2 });
    await chat(bed.kong, HELLO);
    await bed.kong.settled();
    await pause(1100);
    expect(await models(1)).toEqual(["m2"]);
    bed.kong.pdkCalls.reset();
  }

  it("does not probe a WebSocket upgrade Kong sees (in the first 100 headers): Kong proxies it unbuffered", async () => {
    await suspectM1();
    // Three header lines before it (host, content-type, content-length) and 90 more: the 94th line.
    expect(await chatWithUpgradeAfter(90)).toBe(429);
    await bed.kong.settled();
    expect(buffered()).toBe(0);
    expect(bed.kong.pdkCalls.byPhase("log")["kong.service.response.get_raw_body"]).toBeUndefined();
    expect(warnings().at(-1)).toMatch(/for 1000 ms: HTTP 429, no provider hint/);
    expect(bed.kong.logs.some((l) => /only available with buffered proxying/.test(l.message))).toBe(false);
  });

  it("probes as usual when the Upgrade comes after the 100th header: Kong does not see it and keeps buffering", async () => {
    await suspectM1();
    // Kong reads Upgrade from ngx.req.get_headers(), the first lua_max_req_headers (100) lines: this one is the
    // 104th, so Kong leaves the buffering the probe asked for on, and log reads the billing error.
    expect(await chatWithUpgradeAfter(100)).toBe(429);
    await bed.kong.settled();
    expect(buffered()).toBe(1);
    expect(bed.kong.pdkCalls.byPhase("log")["kong.service.response.get_raw_body"]).toBe(1);
    expect(warnings().at(-1)).toMatch(/for 3600000 ms: HTTP 429 insufficient_quota/);
    expect(bed.kong.logs.some((l) => /only available with buffered proxying/.test(l.message))).toBe(false);
  });

  it("never buffers anything when insufficient_quota_suspend_duration is 0", async () => {
    await configure({ ...twoModels(), insufficient_quota_suspend_duration: 0 });
    a.failNext({ status: 429, body: BILLING_EXHAUSTED, times: 2 });
    await chat(bed.kong, HELLO);
    await bed.kong.settled();
    await pause(1100);
    bed.kong.pdkCalls.reset();
    expect(await models(2)).toEqual(["m2", 429]);
    await bed.kong.settled();
    expect(buffered()).toBe(0);
    expect(warnings().at(-1)).toMatch(/for 1000 ms: HTTP 429, no provider hint/);
  });
});
