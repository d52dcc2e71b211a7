/**
 * Failover within the request (failover_attempts > 0): the plugin sends a non-streaming JSON request itself to
 * the next untried entries and answers with the provider's answer through kong.response.exit. Through the Kong
 * double and mock providers on real sockets.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer as createHttpsServer } from "node:https";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { request } from "undici";
import { afterAll, describe, expect, it } from "vitest";
import { type Bed, chat, loadPluginWithFileLog, PRODUCTION_HOST, send, useBed } from "../support/harness";

const HELLO = { model: "gpt-4.5", input: "Hello" };

const hasOpenssl = (() => {
  try {
    execFileSync("openssl", ["version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();

/** A port nothing listens on (taken, then freed). */
async function deadPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as { port: number };
  await new Promise((r) => server.close(r));
  return port;
}

describe("failover within the request", () => {
  let bed: Bed;
  let a: Bed["providers"][number];
  let b: Bed["providers"][number];
  let c: Bed["providers"][number];
  const dir = mkdtempSync(join(tmpdir(), "mbrr-failover-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  useBed({ providers: 3, kongOptions: { env: { PROVIDER_KEY: "sk-provider" } } }, (started) => {
    bed = started;
    [a, b, c] = started.providers as [typeof a, typeof b, typeof c];
  });

  /** The plugin (fresh id) on the service, file-log after it; `service` overrides the service's fields. */
  const configure = (pluginConfig: Record<string, unknown>, service: Record<string, unknown> = {}) =>
    loadPluginWithFileLog(bed.kong, dir, pluginConfig, { service });

  const entries = (...providers: { url: string }[]) =>
    providers.map((p, i) => ({ model: `m${i + 1}`, endpoint: `${p.url}/v1` }));

  /** The warnings the plugin logged since `from`: suspensions and benches. */
  const warnings = (from: number, what: "suspended" | "benched") =>
    bed.kong.logs.slice(from).filter((l) => l.message.includes(`${what} `));

  it("answers a 429 from the first entry with the second's 200, in one request, and suspends the first once", async () => {
    const { logged } = await configure({
      production_models: entries(a, b),
      failover_attempts: 1,
      on_quota_exceed_suspend_duration: 30,
    });
    a.failNext({ status: 429, headers: { "retry-after": "20", "x-ratelimit-remaining-requests": "0" } });
    const before = bed.kong.logs.length;
    const reply = await chat(bed.kong, HELLO);
    await bed.kong.settled();
    expect(reply.status).toBe(200);
    expect(reply.json.model).toBe("m2");
    expect(reply.headers["x-kong-llm-model"]).toBe("m2");
    expect(reply.headers["x-kong-llm-requested-model"]).toBe("gpt-4.5");
    expect(reply.headers["x-kong-llm-attempts"]).toBe("2");
    expect(reply.headers["content-type"]).toBe("application/json");
    expect(reply.headers["x-request-id"]).toMatch(/./);
    // Kong's headers for an answer it did not proxy (the plugin's exit).
    expect(reply.headers["x-kong-response-latency"]).toBeDefined();
    expect(reply.headers["x-kong-upstream-latency"]).toBeUndefined();
    expect(a.requests.map((r) => (r.json as { model: string }).model)).toEqual(["m1"]);
    expect(b.requests.map((r) => (r.json as { model: string }).model)).toEqual(["m2"]);
    // Suspended by the access phase, for the provider's hint; the log phase did not do it again.
    const suspended = warnings(before, "suspended");
    expect(suspended.map((l) => l.message)).toHaveLength(1);
    expect(suspended[0]?.message).toMatch(
      /suspended \S+#m1 \(production\) for 20000 ms: HTTP 429, retry-after: 20/,
    );
    // Logging plugins see the exit, the served entry and how many attempts it took.
    const [line] = logged();
    expect(line.source).toBe("exit");
    expect(line.response.status).toBe(200);
    expect(line.ai["model-based-round-robin"].meta).toMatchObject({ request_model: "m2", attempts: 2 });
    // The next requests stay off the suspended entry.
    const next = [await chat(bed.kong, HELLO), await chat(bed.kong, HELLO)];
    expect(next.map((r) => r.json.model)).toEqual(["m2", "m2"]);
    expect(next.map((r) => r.headers["x-kong-llm-attempts"])).toEqual(["1", "1"]);
  });

  it("answers with the last provider answer when every attempt fails and entries remain", async () => {
    await configure({ production_models: entries(a, b, c), failover_attempts: 1 });
    const before = bed.kong.logs.length;
    a.failNext({ status: 429, body: { error: { message: "a is limited", type: "requests" } } });
    b.failNext({ status: 429, headers: { "retry-after-ms": "1500" }, body: { error: { message: "b too" } } });
    const reply = await chat(bed.kong, HELLO);
    expect(reply.status).toBe(429);
    expect(reply.json.error.message).toBe("b too");
    expect(reply.headers["retry-after-ms"]).toBe("1500");
    expect(reply.headers["x-kong-llm-model"]).toBe("m2");
    expect(reply.headers["x-kong-llm-attempts"]).toBe("2");
    expect(c.requests).toHaveLength(0);
    // Each suspended once, in access; the log phase saw the 429 and left it alone.
    await bed.kong.settled();
    expect(warnings(before, "suspended").map((l) => /suspended \S+#(m\d)/.exec(l.message)?.[1])).toEqual([
      "m1",
      "m2",
    ]);
  });

  it("answers with the all-suspended answer when every entry was tried and is suspended", async () => {
    await configure({ production_models: entries(a, b), failover_attempts: 5, max_retry_after: 10 });
    a.failNext({ status: 429, headers: { "retry-after": "60" } });
    b.failNext({ status: 429, headers: { "retry-after": "30" } });
    const reply = await chat(bed.kong, HELLO);
    expect(reply.status).toBe(503);
    expect(reply.json.error.code).toBe("all_models_suspended");
    expect(reply.headers["retry-after"]).toBe("10");
    expect(reply.headers["x-kong-llm-attempts"]).toBe("2");
    expect(a.requests).toHaveLength(1);
    expect(b.requests).toHaveLength(1);
  });

  it("never sends to an entry twice: a 500 that does not suspend moves on, and the last answer stands", async () => {
    await configure({
      production_models: [
        { model: "heavy", endpoint: `${a.url}/v1`, weight: 5 },
        { model: "light", endpoint: `${b.url}/v1`, weight: 1 },
      ],
      failover_attempts: 3,
      failover_on_statuses: [500, 429],
    });
    a.failNext({ status: 500 });
    b.failNext({ status: 500, body: { error: { message: "light is down" } } });
    const reply = await chat(bed.kong, HELLO);
    expect(reply.status).toBe(500);
    expect(reply.json.error.message).toBe("light is down");
    expect(reply.headers["x-kong-llm-attempts"]).toBe("2");
    expect(a.requests).toHaveLength(1);
    expect(b.requests).toHaveLength(1);
    // A status outside failover_on_statuses is the answer at once.
    a.failNext({ status: 400, body: { error: { message: "bad request" } } });
    const bad = await chat(bed.kong, HELLO);
    expect(bad.status).toBe(400);
    expect(bad.headers["x-kong-llm-attempts"]).toBe("1");
  });

  it("fails over from an endpoint that refuses connections, and benches it", async () => {
    const port = await deadPort();
    await configure({
      production_models: [
        { model: "dead", endpoint: `http://127.0.0.1:${port}/v1` },
        { model: "alive", endpoint: `${a.url}/v1` },
      ],
      failover_attempts: 1,
    });
    const before = bed.kong.logs.length;
    const reply = await chat(bed.kong, HELLO);
    await bed.kong.settled();
    expect(reply.status).toBe(200);
    expect(reply.json.model).toBe("alive");
    expect(reply.headers["x-kong-llm-attempts"]).toBe("2");
    const benched = warnings(before, "benched");
    expect(benched).toHaveLength(1);
    expect(benched[0]?.message).toMatch(
      /benched http:\/\/127\.0\.0\.1:\d+\/v1#dead \(production\) for 5000 ms/,
    );
    // Benched: the next request goes straight to the other entry.
    const next = await chat(bed.kong, HELLO);
    expect(next.headers["x-kong-llm-attempts"]).toBe("1");
  });

  it("fails over from an entry that does not answer within the service's read_timeout, and benches it", async () => {
    await configure({ production_models: entries(a, b), failover_attempts: 1 }, { read_timeout: 300 });
    a.failNext({ status: 200, delayMs: 3000 });
    const before = bed.kong.logs.length;
    const reply = await chat(bed.kong, HELLO);
    // Not timed (a busy machine stretches any figure): the answer is the second entry's, a's 3 s answer never is.
    expect(reply.status).toBe(200);
    expect(reply.json.model).toBe("m2");
    expect(warnings(before, "benched")).toHaveLength(1);
  });

  it("holds the time budget: two slow providers, a 504 naming failover_timeout, the second never tried", async () => {
    await configure({ production_models: entries(a, b), failover_attempts: 1, failover_timeout: 1 });
    a.failNext({ status: 200, delayMs: 4000 });
    b.failNext({ status: 200, delayMs: 4000 });
    const started = Date.now();
    const reply = await chat(bed.kong, HELLO);
    const took = Date.now() - started;
    expect(reply.status).toBe(504);
    expect(reply.json.error.code).toBe("upstream_timeout");
    expect(reply.json.error.message).toMatch(/failover budget of 1 s/);
    // A lower bound only: the budget is waited for, never cut short (a busy machine can only make it longer).
    expect(took).toBeGreaterThanOrEqual(950);
    // The whole budget went to the first entry: the second was never tried.
    expect(b.requests).toHaveLength(0);
  });

  it("sends the client's query string and headers, the entry's key instead of the client's, Host = the entry's host", async () => {
    await configure({
      production_models: [
        {
          model: "keyed",
          endpoint: `${a.url}/openai/deployments/keyed`,
          auth_header_name: "api-key",
          auth_header_value: "{vault://env/provider-key}",
        },
      ],
      failover_attempts: 1,
    });
    const raw = '{ "model" : "gpt-4.5", "input": "Hello", "n": 1e0 }';
    const reply = await send(bed.kong, {
      path: "/openai/v1/chat/completions?api-version=2024-06-01&x=%20y",
      body: raw,
      headers: {
        authorization: "Bearer client-key",
        "x-api-key": "client-key-2",
        "api-key": "client-key-3",
        "openai-organization": "org-1",
      },
    });
    expect(reply.status).toBe(200);
    const received = a.requests[0];
    expect(received?.method).toBe("POST");
    expect(received?.path).toBe("/openai/deployments/keyed/chat/completions");
    expect(received?.query).toBe("api-version=2024-06-01&x=%20y");
    expect(received?.headers.host).toBe("127.0.0.1");
    expect(received?.headers["api-key"]).toBe("sk-provider");
    expect(received?.headers.authorization).toBeUndefined();
    expect(received?.headers["x-api-key"]).toBeUndefined();
    expect(received?.headers["openai-organization"]).toBe("org-1");
    expect(received?.body.toString()).toBe('{ "model" : "keyed", "input": "Hello", "n": 1e0 }');
    expect(received?.headers["content-length"]).toBe(String(received?.body.length));
  });

  it("passes a gzipped answer through as it is, with its content-encoding", async () => {
    await configure({ production_models: entries(a, b, c), failover_attempts: 1 });
    a.failNext({ status: 429 });
    b.failNext({ status: 429, gzip: true, body: { error: { message: "limited too" } } });
    const res = await request(`${bed.kong.proxyUrl}/openai/v1/chat/completions`, {
      method: "POST",
      headers: { host: PRODUCTION_HOST, "content-type": "application/json", "accept-encoding": "gzip" },
      body: JSON.stringify(HELLO),
    });
    const bytes = Buffer.from(await res.body.arrayBuffer());
    expect(res.statusCode).toBe(429);
    expect(res.headers["content-encoding"]).toBe("gzip");
    expect(res.headers["content-length"]).toBe(String(bytes.length));
    expect(JSON.parse(gunzipSync(bytes).toString("utf8")).error.message).toBe("limited too");
  });

  it("benches for insufficient_quota_suspend_duration when the 429's body says the billing is exhausted", async () => {
    await configure({ production_models: entries(a, b), failover_attempts: 1 });
    a.failNext({
      status: 429,
      gzip: true,
      body: {
        error: {
          message: "You exceeded your current quota",
          type: "insufficient_quota",
          code: "insufficient_quota",
        },
      },
    });
    const before = bed.kong.logs.length;
    const reply = await send(bed.kong, { body: HELLO, headers: { "accept-encoding": "gzip" } });
    expect(reply.status).toBe(200);
    expect(warnings(before, "suspended")[0]?.message).toMatch(/for 3600000 ms: HTTP 429 insufficient_quota/);
  });

  it.skipIf(!hasOpenssl)(
    "verifies the provider's TLS certificate (tls_verify), and sends anyway with it off",
    async () => {
      const key = join(dir, "key.pem");
      const cert = join(dir, "cert.pem");
      execFileSync(
        "openssl",
        [
          ...["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"],
          ...["-keyout", key, "-out", cert],
        ],
        { stdio: "ignore" },
      );
      const server = createHttpsServer({ key: readFileSync(key), cert: readFileSync(cert) }, (_, res) => {
        res.writeHead(200, { "content-type": "application/json" });
        res.end('{"model":"tls"}');
      });
      await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
      const { port } = server.address() as { port: number };
      try {
        const models = [
          { model: "tls", endpoint: `https://localhost:${port}/v1` },
          { model: "m2", endpoint: `${a.url}/v1` },
        ];
        await configure({ production_models: models, failover_attempts: 1 });
        const verified = await chat(bed.kong, HELLO);
        expect(verified.json.model).toBe("m2"); // self-signed: refused, benched, the next entry answered
        expect(verified.headers["x-kong-llm-attempts"]).toBe("2");
        await configure({ production_models: models, failover_attempts: 1, tls_verify: false });
        const unverified = await chat(bed.kong, HELLO);
        expect(unverified.json.model).toBe("tls");
        expect(unverified.headers["x-kong-llm-attempts"]).toBe("1");
      } finally {
        server.close();
      }
    },
  );

  it("never sends a streaming request itself: Kong proxies it as without failover", async () => {
    await configure({ production_models: entries(a, b), failover_attempts: 2 });
    bed.kong.pdkCalls.reset();
    const reply = await chat(bed.kong, { ...HELLO, stream: true });
    await bed.kong.settled();
    expect(reply.status).toBe(200);
    expect(reply.headers["content-type"]).toBe("text/event-stream");
    expect(reply.headers["x-kong-llm-attempts"]).toBeUndefined();
    expect(reply.headers["x-kong-upstream-latency"]).toBeDefined();
    const access = bed.kong.pdkCalls.byPhase("access");
    expect(access["kong.service.set_target"]).toBe(1);
    expect(access["kong.response.exit"]).toBeUndefined();
    expect(access["kong.request.get_raw_query"]).toBeUndefined();
    // A 429 on a stream is the client's, and suspends the entry in log as before.
    for (const p of [a, b]) p.failNext({ status: 429 });
    const limited = await chat(bed.kong, { ...HELLO, stream: true });
    expect(limited.status).toBe(429);
    expect(limited.headers["x-kong-llm-attempts"]).toBeUndefined();
  });

  it("costs 7 PDK calls in access (two reads for the method and query, no writes but the log value and the exit) and 1 in log", async () => {
    await configure({ production_models: entries(a, b), failover_attempts: 1 });
    await chat(bed.kong, HELLO);
    await bed.kong.settled();
    bed.kong.pdkCalls.reset();
    const reply = await chat(bed.kong, HELLO);
    await bed.kong.settled();
    expect(reply.status).toBe(200);
    expect(bed.kong.pdkCalls.byPhase("access")).toEqual({
      "kong.request.get_headers": 1,
      "kong.request.get_raw_body": 1,
      "kong.nginx.get_var": 1,
      "kong.request.get_method": 1,
      "kong.request.get_raw_query": 1,
      "kong.log.set_serialize_value": 1,
      "kong.response.exit": 1,
    });
    expect(bed.kong.pdkCalls.byPhase("log")).toEqual({ "kong.response.get_status": 1 });
  });

  it("leaves a request without a body to Kong (GET /models)", async () => {
    await configure({ production_models: entries(a, b), failover_attempts: 1 });
    const reply = await send(bed.kong, { method: "GET", path: "/openai/v1/models" });
    expect(reply.status).toBe(200);
    expect(reply.headers["x-kong-llm-attempts"]).toBeUndefined();
    expect(reply.headers["x-kong-upstream-latency"]).toBeDefined();
  });
});
