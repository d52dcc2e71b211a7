import { randomUUID } from "node:crypto";
import { beforeEach, describe, expect, it } from "vitest";
import { type Bed, chat, DIRECT, llmService, SANDBOX_HOST, send, useBed } from "../support/harness";

const HELLO = { model: "gpt-4.5", input: "Hello" };

describe("model-based-round-robin behind the Kong double", () => {
  let bed: Bed;
  let a: Bed["providers"][number];
  let b: Bed["providers"][number];
  let c: Bed["providers"][number];

  useBed({ providers: 3, kongOptions: { env: { TEST_PROVIDER_KEY: "secret-one" } } }, (started) => {
    bed = started;
    [a, b, c] = started.providers as [typeof a, typeof b, typeof c];
  });

  /** Loads a config whose plugin has a fresh id, so no rotation state carries over from another test. */
  async function configure(pluginConfig: Record<string, unknown>, pluginId = randomUUID()) {
    const config = llmService({ ...DIRECT, ...pluginConfig }) as {
      services: { url: string; plugins: { id?: string }[] }[];
    };
    const service = config.services[0];
    if (service === undefined || service.plugins[0] === undefined)
      throw new Error("llmService changed shape");
    service.url = `${a.url}/v1`;
    service.plugins[0].id = pluginId;
    await bed.kong.loadConfig(config);
    return pluginId;
  }

  const models = (replies: { json: { model?: string } }[]) => replies.map((r) => r.json?.model);

  async function sequence(n: number, opts: { host?: string } = {}) {
    const replies = [];
    for (let i = 0; i < n; i++) replies.push(await chat(bed.kong, HELLO, opts));
    return replies;
  }

  describe("APK's own scenario (weights 1:1:1, three POSTs asking for gpt-4.5)", () => {
    beforeEach(async () => {
      await configure({
        production_models: [
          { model: "gpt-4o", endpoint: a.url, weight: 1 },
          { model: "gpt-3.5", endpoint: b.url, weight: 1 },
          { model: "gpt-4.5", endpoint: a.url, weight: 1 },
        ],
        sandbox_models: [
          { model: "gpt-4o", endpoint: b.url, weight: 1 },
          { model: "gpt-3.5", endpoint: a.url, weight: 1 },
          { model: "gpt-4.5", endpoint: b.url, weight: 1 },
        ],
        sandbox_hosts: [SANDBOX_HOST],
      });
    });

    it("answers from gpt-4o, gpt-3.5 and gpt-4.5 on the production host, each from its endpoint", async () => {
      const replies = await sequence(3);
      expect(replies.map((r) => r.status)).toEqual([200, 200, 200]);
      expect(models(replies)).toEqual(["gpt-4o", "gpt-3.5", "gpt-4.5"]);
      expect(a.requests.map((r) => (r.json as { model: string }).model)).toEqual(["gpt-4o", "gpt-4.5"]);
      expect(b.requests.map((r) => (r.json as { model: string }).model)).toEqual(["gpt-3.5"]);
    });

    it("answers from the sandbox list, with its own endpoints, on the sandbox host", async () => {
      const replies = await sequence(3, { host: SANDBOX_HOST });
      expect(models(replies)).toEqual(["gpt-4o", "gpt-3.5", "gpt-4.5"]);
      expect(b.requests.map((r) => (r.json as { model: string }).model)).toEqual(["gpt-4o", "gpt-4.5"]);
      expect(a.requests.map((r) => (r.json as { model: string }).model)).toEqual(["gpt-3.5"]);
    });

    it("overwrites the client's model and leaves every other byte of the body as sent", async () => {
      const raw = '{ "input": "Hello",\n  "model" : "gpt-4.5", "temperature": 1.0, "n": 1e0 }';
      await chat(bed.kong, raw);
      expect(a.requests[0]?.body.toString()).toBe(
        '{ "input": "Hello",\n  "model" : "gpt-4o", "temperature": 1.0, "n": 1e0 }',
      );
      expect(a.requests[0]?.headers["content-length"]).toBe(String(a.requests[0]?.body.length));
    });
  });

  it("keeps production and sandbox rotations apart", async () => {
    await configure({
      production_models: [
        { model: "p1", endpoint: a.url },
        { model: "p2", endpoint: a.url },
      ],
      sandbox_models: [
        { model: "s1", endpoint: b.url },
        { model: "s2", endpoint: b.url },
      ],
      sandbox_hosts: [SANDBOX_HOST],
    });
    const order = [
      await chat(bed.kong, HELLO),
      await chat(bed.kong, HELLO, { host: SANDBOX_HOST }),
      await chat(bed.kong, HELLO),
      await chat(bed.kong, HELLO, { host: SANDBOX_HOST }),
    ];
    expect(models(order)).toEqual(["p1", "s1", "p2", "s2"]);
  });

  it("interleaves weights 5:1:1 as A A B A C A A in every cycle", async () => {
    await configure({
      production_models: [
        { model: "A", endpoint: a.url, weight: 5 },
        { model: "B", endpoint: a.url, weight: 1 },
        { model: "C", endpoint: a.url, weight: 1 },
      ],
    });
    const replies = await sequence(14);
    expect(models(replies).join(" ")).toBe("A A B A C A A A A B A C A A");
  });

  it("treats the same model on two endpoints as two entries and alternates between them", async () => {
    await configure({
      production_models: [
        { model: "gpt-4o", endpoint: a.url },
        { model: "gpt-4o", endpoint: b.url },
      ],
    });
    await sequence(4);
    expect(a.requests).toHaveLength(2);
    expect(b.requests).toHaveLength(2);
  });

  it("sends the request to the endpoint's path, keeps the query, sets Host to the endpoint's host and the key header", async () => {
    await configure({
      production_models: [
        {
          model: "gpt-4o",
          endpoint: `${b.url}/openai/deployments/gpt-4o`,
          auth_header_name: "api-key",
          auth_header_value: "{vault://env/test-provider-key}",
        },
      ],
    });
    const reply = await send(bed.kong, {
      path: "/openai/v1/chat/completions?api-version=2024-06-01",
      body: HELLO,
    });
    expect(reply.status).toBe(200);
    const received = b.requests[0];
    expect(received?.path).toBe("/openai/deployments/gpt-4o/chat/completions");
    expect(received?.query).toContain("api-version=2024-06-01");
    expect(received?.headers.host).toBe("127.0.0.1");
    expect(received?.headers["api-key"]).toBe("secret-one");
  });

  it("routes a request without a body (GET /models) to an entry with its key, never to the service", async () => {
    await configure({
      production_models: [
        { model: "gpt-4o", endpoint: `${b.url}/v1`, auth_header_name: "api-key", auth_header_value: "k" },
        { model: "gpt-3.5", endpoint: `${c.url}/v1` },
      ],
    });
    const reply = await send(bed.kong, { method: "GET", path: "/openai/v1/models" });
    expect(reply.status).toBe(200);
    expect(b.requests.map((r) => `${r.method} ${r.path} ${r.headers["api-key"]}`)).toEqual([
      "GET /v1/models k",
    ]);
    expect(a.requests).toHaveLength(0);
    // It took no turn: the first chat still goes to the first entry.
    expect((await chat(bed.kong, HELLO)).json?.model).toBe("gpt-4o");
  });

  describe("suspension after a quota signal", () => {
    it("skips a model that answered 429 and takes it back after the duration, without a burst", async () => {
      await configure({
        production_models: [
          { model: "m1", endpoint: a.url },
          { model: "m2", endpoint: b.url },
        ],
        on_quota_exceed_suspend_duration: 1,
      });
      a.failNext({ status: 429, body: { error: { message: "Rate limit reached", type: "requests" } } });
      const limited = await chat(bed.kong, HELLO);
      expect(limited.status).toBe(429);
      await bed.kong.settled();
      expect(models(await sequence(3))).toEqual(["m2", "m2", "m2"]);
      await new Promise((r) => setTimeout(r, 1100));
      const back = models(await sequence(6));
      // m1 rejoins level with m2: they alternate, m1 never gets the turns it missed.
      expect(back.filter((m) => m === "m1")).toHaveLength(3);
      expect(back.some((m, i) => i > 0 && m === back[i - 1])).toBe(false);
    });

    it("answers itself when every model is suspended: the configured status, OpenAI's error shape, Retry-After", async () => {
      await configure({
        production_models: [{ model: "only", endpoint: a.url }],
        on_quota_exceed_suspend_duration: 2,
        all_suspended_status: 429,
      });
      a.failNext({ status: 429 });
      await chat(bed.kong, HELLO);
      await bed.kong.settled();
      const refused = await chat(bed.kong, HELLO);
      expect(refused.status).toBe(429);
      // Exactly what a client of Kong gets: OpenAI's error shape with `param: null` in the README's key order
      // (the plugin sends a ready JSON string: a table body would lose the null and the order on its way).
      expect(refused.headers["content-type"]).toBe("application/json");
      expect(refused.text).toBe(
        JSON.stringify({
          error: {
            message: refused.json.error.message,
            type: "rate_limit_error",
            param: null,
            code: "all_models_suspended",
          },
        }),
      );
      expect(refused.json.error.message).toMatch(/^every production model is suspended .*; retry in [12] s$/);
      // Kong's header_filter adds its request id to the answers plugins make.
      expect(refused.headers["x-kong-request-id"]).toMatch(/^[0-9a-f]{32}$/);
      expect(Number(refused.headers["retry-after"])).toBeGreaterThanOrEqual(1);
      expect(Number(refused.headers["retry-after"])).toBeLessThanOrEqual(2);
      const ms = Number(refused.headers["retry-after-ms"]);
      expect(ms).toBeGreaterThan(0);
      expect(ms).toBeLessThanOrEqual(2000);
      expect(a.requests).toHaveLength(1);
    });

    it("answers 503 by default when every model is suspended", async () => {
      await configure({
        production_models: [{ model: "only", endpoint: a.url }],
        on_quota_exceed_suspend_duration: 2,
      });
      a.failNext({ status: 429 });
      await chat(bed.kong, HELLO);
      await bed.kong.settled();
      expect((await chat(bed.kong, HELLO)).status).toBe(503);
    });

    it("suspends for the provider's retry-after-ms instead of the configured duration", async () => {
      await configure({
        production_models: [{ model: "only", endpoint: a.url }],
        on_quota_exceed_suspend_duration: 60,
        min_suspend_duration: 0,
      });
      a.failNext({ status: 429, headers: { "retry-after-ms": "700" } });
      await chat(bed.kong, HELLO);
      await bed.kong.settled();
      const refused = await chat(bed.kong, HELLO);
      expect(refused.status).toBe(503);
      expect(Number(refused.headers["retry-after-ms"])).toBeLessThanOrEqual(700);
      await new Promise((r) => setTimeout(r, 750));
      expect((await chat(bed.kong, HELLO)).status).toBe(200);
    });

    it("does not suspend when the duration is 0", async () => {
      await configure({
        production_models: [{ model: "only", endpoint: a.url }],
        on_quota_exceed_suspend_duration: 0,
      });
      a.failNext({ status: 429 });
      expect((await chat(bed.kong, HELLO)).status).toBe(429);
      await bed.kong.settled();
      expect((await chat(bed.kong, HELLO)).status).toBe(200);
    });
  });

  it("keeps rotation and suspensions across a config reload (a new instance of the same plugin id)", async () => {
    const id = randomUUID();
    const config = {
      production_models: [
        { model: "A", endpoint: a.url, weight: 5 },
        { model: "B", endpoint: a.url, weight: 1 },
        { model: "C", endpoint: c.url, weight: 1 },
      ],
      on_quota_exceed_suspend_duration: 30,
    };
    await configure(config, id);
    expect(models(await sequence(3))).toEqual(["A", "A", "B"]);
    await configure(config, id);
    expect(models(await sequence(4))).toEqual(["A", "C", "A", "A"]);
    c.failNext({ status: 429 });
    await sequence(7);
    await bed.kong.settled();
    await configure(config, id);
    expect(models(await sequence(6))).not.toContain("C");
  });

  it("reads the response headers in log for a 200 only when proactive_suspension is on", async () => {
    await configure({
      production_models: [{ model: "gpt-4o", endpoint: a.url }],
      proactive_suspension: true,
    });
    await chat(bed.kong, HELLO);
    await bed.kong.settled();
    bed.kong.pdkCalls.reset();
    await chat(bed.kong, HELLO);
    await bed.kong.settled();
    expect(bed.kong.pdkCalls.byPhase("log")).toEqual({
      "kong.response.get_status": 1,
      "kong.response.get_headers": 1,
    });
  });

  it("suspends a model proactively after a success whose remaining requests is 0, until the reset", async () => {
    await configure({
      production_models: [
        { model: "m1", endpoint: a.url },
        { model: "m2", endpoint: b.url },
      ],
      min_suspend_duration: 0,
      proactive_suspension: true,
    });
    a.setDefault({
      headers: { "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "800ms" },
    });
    expect((await chat(bed.kong, HELLO)).json.model).toBe("m1");
    await bed.kong.settled();
    a.reset();
    expect(models(await sequence(3))).toEqual(["m2", "m2", "m2"]);
    await new Promise((r) => setTimeout(r, 850));
    expect(models(await sequence(2))).toContain("m1");
  });

  describe("bad input gets a clear answer", () => {
    beforeEach(async () => {
      await configure({
        production_models: [{ model: "gpt-4o", endpoint: a.url }],
        max_request_body_size: 65536,
      });
    });

    it.each([
      ["not JSON", "model=gpt-4", /not valid JSON/],
      ["a JSON array", "[1,2]", /JSON object/],
      ["a JSON string", '"hello"', /JSON object/],
      ["empty", "", /empty/],
    ])("answers 400 in OpenAI's shape to a body that is %s", async (_, body, message) => {
      const reply = await chat(bed.kong, body);
      expect(reply.status).toBe(400);
      expect(reply.json.error.type).toBe("invalid_request_error");
      expect(reply.json.error.message).toMatch(message);
      expect(a.requests).toHaveLength(0);
    });

    it("does not let a refused body take a turn in the rotation", async () => {
      await configure({
        production_models: [
          { model: "first", endpoint: a.url },
          { model: "second", endpoint: a.url },
        ],
      });
      expect((await chat(bed.kong, "not json")).status).toBe(400);
      expect((await chat(bed.kong, HELLO)).json.model).toBe("first");
    });

    it("answers 413 to a body over max_request_body_size, before reading it", async () => {
      const reply = await chat(bed.kong, { ...HELLO, input: "x".repeat(70_000) });
      expect(reply.status).toBe(413);
      expect(reply.json.error.message).toMatch(/65536/);
      expect(a.requests).toHaveLength(0);
    });

    it("reads a body larger than Kong's client body buffer (8k) from Kong's temp file", async () => {
      const input = "y".repeat(20_000);
      const reply = await chat(bed.kong, { ...HELLO, input });
      expect(reply.status).toBe(200);
      expect((a.requests[0]?.json as { input?: string } | undefined)?.input).toBe(input);
    });
  });

  it("refuses a sandbox request when there is no sandbox list, never sending it to production", async () => {
    await configure({
      production_models: [{ model: "gpt-4o", endpoint: a.url }],
      sandbox_hosts: [SANDBOX_HOST],
    });
    const reply = await chat(bed.kong, HELLO, { host: SANDBOX_HOST });
    expect(reply.status).toBe(404);
    expect(reply.json.error.message).toMatch(/sandbox/);
    expect(a.requests).toHaveLength(0);
  });

  it("rejects weight 0 through the Admin API with Kong's 400 naming the field", async () => {
    const res = await fetch(`${bed.kong.adminUrl}/config`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(llmService({ production_models: [{ model: "m", endpoint: a.url, weight: 0 }] })),
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as Record<string, unknown>;
    expect(JSON.stringify(body)).toMatch(/weight/);
    expect(JSON.stringify(body)).toMatch(/between 1 and 65535/);
  });

  it("makes 8 PDK calls in access and 1 in log in the common case (another model asked for, the service's path, a key)", async () => {
    await configure({
      production_models: [
        {
          model: "gpt-4o",
          endpoint: `${a.url}/v1`,
          auth_header_name: "Authorization",
          auth_header_value: "Bearer sk-test",
        },
      ],
      proactive_suspension: false,
    });
    await chat(bed.kong, HELLO);
    await bed.kong.settled();
    bed.kong.pdkCalls.reset();
    await chat(bed.kong, HELLO);
    await bed.kong.settled();
    const log = bed.kong.pdkCalls.byPhase("log");
    expect(log).toEqual({ "kong.response.get_status": 1 });
    // Three reads (headers, body, $upstream_uri: the service was read by the first request), the body and key
    // writes, the client's model headers, the log value that carries the choice to log, and the target, last.
    expect(bed.kong.pdkCalls.byPhase("access")).toEqual({
      "kong.request.get_headers": 1,
      "kong.request.get_raw_body": 1,
      "kong.nginx.get_var": 1,
      "kong.service.request.set_raw_body": 1,
      "kong.service.request.set_header": 1,
      "kong.response.set_headers": 1,
      "kong.log.set_serialize_value": 1,
      "kong.service.set_target": 1,
    });
  });

  it("skips the path and body writes when the endpoint's path is the service's and the client named the model", async () => {
    await configure({ production_models: [{ model: "gpt-4.5", endpoint: `${a.url}/v1` }] });
    await chat(bed.kong, HELLO);
    await bed.kong.settled();
    bed.kong.pdkCalls.reset();
    a.clearRequests();
    const body = '{ "model" : "gpt-4.5", "input":"Hello" }';
    const reply = await send(bed.kong, { body, path: "/openai/v1/chat/completions?x=1" });
    await bed.kong.settled();
    expect(reply.json.model).toBe("gpt-4.5");
    expect(a.requests[0]?.path).toBe("/v1/chat/completions");
    expect(a.requests[0]?.query).toBe("x=1");
    expect(a.requests[0]?.body.toString("utf8")).toBe(body);
    expect(bed.kong.pdkCalls.byPhase("access")).toEqual({
      "kong.request.get_headers": 1,
      "kong.request.get_raw_body": 1,
      "kong.nginx.get_var": 1,
      "kong.response.set_headers": 1,
      "kong.log.set_serialize_value": 1,
      "kong.service.set_target": 1,
    });
  });

  it("sees a Content-Length that comes after 100 other headers (Kong's default get_headers cap)", async () => {
    await configure({ production_models: [{ model: "gpt-4o", endpoint: a.url }] });
    const filler = Object.fromEntries(Array.from({ length: 120 }, (_, i) => [`x-filler-${i}`, "1"]));
    const reply = await chat(bed.kong, HELLO, { headers: filler });
    expect(reply.json.model).toBe("gpt-4o");
  });

  it("works with the official openai client through the proxy port", async () => {
    await configure({
      production_models: [
        { model: "gpt-4o", endpoint: a.url },
        { model: "gpt-4o-mini", endpoint: b.url },
      ],
    });
    const { default: OpenAI } = await import("openai");
    const client = new OpenAI({
      baseURL: `${bed.kong.proxyUrl}/openai/v1`,
      apiKey: "client-key",
      maxRetries: 0,
    });
    const first = await client.chat.completions.create({
      model: "any",
      messages: [{ role: "user", content: "hi" }],
    });
    const second = await client.chat.completions.create({
      model: "any",
      messages: [{ role: "user", content: "hi" }],
    });
    expect([first.model, second.model]).toEqual(["gpt-4o", "gpt-4o-mini"]);
    const stream = await client.chat.completions.create({
      model: "any",
      stream: true,
      messages: [{ role: "user", content: "hi" }],
    });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    expect(chunks.length).toBeGreaterThan(1);
    expect(chunks[0]?.model).toBe("gpt-4o");
  });
});
