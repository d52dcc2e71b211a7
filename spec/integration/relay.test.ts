/**
 * Failover within the request, through the relay (failover_attempts > 0, the default): access points Kong's
 * upstream at the relay in the plugin server, which sends to the entries and passes the answer back as it
 * arrives. Through the Kong double, mock providers and hand-made providers on real sockets.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer as createHttpServer, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type Bed,
  chat,
  loadPluginWithFileLog,
  PLUGIN_DIR,
  PLUGIN_NAME,
  PRODUCTION_HOST,
  send,
  useBed,
} from "../support/harness";

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
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as { port: number };
  await new Promise((r) => server.close(r));
  return port;
}

/** A hand-made provider on a real socket, for answers the mock provider does not give. */
async function provider(
  handle: Parameters<typeof createHttpServer>[1],
): Promise<{ url: string; server: Server }> {
  const server = createHttpServer(handle);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, server };
}

function close(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((r) => server.close(() => r()));
}

/** The plugin server's peak resident memory (VmHWM), in bytes. */
function peakRss(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1]) * 1024;
}

describe("the relay: failover within the request", () => {
  let bed: Bed;
  let a: Bed["providers"][number];
  let b: Bed["providers"][number];
  let c: Bed["providers"][number];
  let relayPort: number;
  const dir = mkdtempSync(join(tmpdir(), "mbrr-relay-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  // Before the bed starts: the plugin server's relay listens on this port, so a test can call it directly.
  beforeAll(async () => {
    relayPort = await freePort();
  });
  useBed(
    {
      providers: 3,
      kongOptions: {
        env: { PROVIDER_KEY: "sk-provider" },
        get pluginServers() {
          return [
            {
              name: PLUGIN_NAME,
              pluginsDirectory: PLUGIN_DIR,
              // Run outside Kong, as the image runs it: a Kong-managed server would see no environment.
              supervised: true,
              env: { MODEL_BASED_ROUND_ROBIN_RELAY_LISTEN: `127.0.0.1:${relayPort}` },
            },
          ];
        },
      },
    },
    (started) => {
      bed = started;
      [a, b, c] = started.providers as [typeof a, typeof b, typeof c];
    },
  );

  /** The plugin (fresh id) on the service, file-log after it; `service` overrides the service's fields. */
  const configure = async (pluginConfig: Record<string, unknown>, service: Record<string, unknown> = {}) => {
    return loadPluginWithFileLog(bed.kong, dir, pluginConfig, { service });
  };

  const entries = (...providers: { url: string }[]) =>
    providers.map((p, i) => ({ model: `m${i + 1}`, endpoint: `${p.url}/v1` }));

  /** The lines the plugin logged since `from`: suspensions and benches. */
  const warnings = (from: number, what: "suspended" | "benched") =>
    bed.kong.logs.slice(from).filter((l) => l.message.includes(`${what} `));

  it("is on by default: a 429 from the first entry is answered by the second, in one request, and suspends the first once", async () => {
    const { logged } = await configure({
      production_models: entries(a, b),
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
    // Kong proxied it (to the relay): its upstream headers are there.
    expect(reply.headers["x-kong-upstream-latency"]).toBeDefined();
    expect(a.requests.map((r) => (r.json as { model: string }).model)).toEqual(["m1"]);
    expect(b.requests.map((r) => (r.json as { model: string }).model)).toEqual(["m2"]);
    const suspended = warnings(before, "suspended");
    expect(suspended.map((l) => l.message)).toHaveLength(1);
    expect(suspended[0]?.message).toMatch(
      /suspended \S+#m1 \(production\) for 20000 ms: HTTP 429, retry-after: 20/,
    );
    // Logging plugins: the log value names access's choice and says the request was relayed; the answer's
    // headers name the model that served it.
    const [line] = logged();
    expect(line.source).toBe("upstream");
    expect(line.response.status).toBe(200);
    expect(line.ai["model-based-round-robin"].meta).toMatchObject({ request_model: "m1", relayed: true });
    expect(line.response.headers["x-kong-llm-model"]).toBe("m2");
    // The next requests stay off the suspended entry.
    const next = [await chat(bed.kong, HELLO), await chat(bed.kong, HELLO)];
    expect(next.map((r) => r.json.model)).toEqual(["m2", "m2"]);
    expect(next.map((r) => r.headers["x-kong-llm-attempts"])).toEqual(["1", "1"]);
  });

  it("fails a stream over too, before its first byte, and passes the second entry's events on as they come", async () => {
    // The second entry sends one event, then waits for the test: the client must have it before the end.
    let release: () => void = () => {};
    const released = new Promise<void>((r) => {
      release = r;
    });
    const streaming = await provider(async (req, res) => {
      req.resume();
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write('data: {"choices":[{"delta":{"content":"first"}}]}\n\n');
      await released;
      res.end('data: {"choices":[{"delta":{"content":"last"}}]}\n\ndata: [DONE]\n\n');
    });
    try {
      await configure({
        production_models: [entries(a)[0], { model: "m2", endpoint: `${streaming.url}/v1` }],
      });
      a.failNext({ status: 429, headers: { "retry-after": "5" } });
      const res = await request(`${bed.kong.proxyUrl}/openai/v1/chat/completions`, {
        method: "POST",
        headers: { host: PRODUCTION_HOST, "content-type": "application/json" },
        body: JSON.stringify({ ...HELLO, stream: true }),
      });
      expect(res.statusCode).toBe(200);
      expect(res.headers["x-kong-llm-model"]).toBe("m2");
      expect(res.headers["x-kong-llm-attempts"]).toBe("2");
      const chunks: string[] = [];
      for await (const chunk of res.body) {
        chunks.push(chunk.toString());
        // The first event arrived while the provider still holds the rest.
        if (chunks.length === 1) {
          expect(chunks[0]).toContain('"first"');
          release();
        }
      }
      expect(chunks.join("")).toContain("[DONE]");
      expect(a.requests).toHaveLength(1);
    } finally {
      release();
      await close(streaming.server);
    }
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
    const port = await freePort();
    await configure({
      production_models: [
        { model: "dead", endpoint: `http://127.0.0.1:${port}/v1` },
        { model: "alive", endpoint: `${a.url}/v1` },
      ],
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

  it("benches and skips a trickling provider: its head does not arrive within failover_attempt_timeout", async () => {
    const trickling = await provider((req, res) => {
      req.resume();
      // One header line every 100 ms, forever: no silence long enough for a between-bytes timeout.
      const socket = res.socket;
      socket?.write("HTTP/1.1 200 OK\r\n");
      const timer = setInterval(() => socket?.write("x-trickle: 1\r\n"), 100);
      socket?.once("close", () => clearInterval(timer));
    });
    try {
      await configure(
        {
          production_models: [{ model: "slow", endpoint: `${trickling.url}/v1` }, entries(a, b)[1]],
          failover_attempt_timeout: 0.3,
        },
        { read_timeout: 5000 },
      );
      const before = bed.kong.logs.length;
      const reply = await chat(bed.kong, HELLO);
      expect(reply.status).toBe(200);
      expect(reply.json.model).toBe("m2");
      expect(reply.headers["x-kong-llm-attempts"]).toBe("2");
      expect(warnings(before, "benched")[0]?.message).toMatch(/#slow \(production\)/);
      const next = await chat(bed.kong, HELLO);
      expect(next.headers["x-kong-llm-attempts"]).toBe("1");
      expect(next.json.model).toBe("m2");
    } finally {
      await close(trickling.server);
    }
  });

  it("ends only that request when the provider resets a stream mid-answer, and benches the entry", async () => {
    const breaking = await provider(async (req, res) => {
      const asked = JSON.parse(Buffer.concat(await req.toArray()).toString()) as { stream?: boolean };
      if (asked.stream !== true) {
        res.writeHead(200, { "content-type": "application/json" });
        return void res.end('{"model":"breaks"}');
      }
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write('data: {"choices":[{"delta":{"content":"partial"}}]}\n\n');
      setTimeout(() => res.socket?.destroy(), 50);
    });
    try {
      await configure({
        production_models: [{ model: "breaks", endpoint: `${breaking.url}/v1` }, entries(a, b)[1]],
      });
      const pid = bed.kong.server(PLUGIN_NAME).pid;
      const before = bed.kong.logs.length;
      const others = Array.from({ length: 6 }, () => chat(bed.kong, HELLO));
      const broken = await request(`${bed.kong.proxyUrl}/openai/v1/chat/completions`, {
        method: "POST",
        headers: { host: PRODUCTION_HOST, "content-type": "application/json" },
        body: JSON.stringify({ ...HELLO, stream: true }),
      });
      // The head and the first event went back before the break: nothing can be retried after that.
      const outcome = await broken.body.text().then(
        (text) => ({ complete: true, text }),
        () => ({ complete: false, text: "" }),
      );
      // Kong either reports the broken upstream (the read fails) or ends the body where it broke.
      expect(outcome.complete ? outcome.text : "partial").toContain("partial");
      expect(outcome.text).not.toContain("[DONE]");
      const replies = await Promise.all(others);
      expect(replies.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 200]);
      expect(bed.kong.server(PLUGIN_NAME).pid).toBe(pid);
      await bed.kong.settled();
      expect(warnings(before, "benched").some((l) => /#breaks \(production\)/.test(l.message))).toBe(true);
    } finally {
      await close(breaking.server);
    }
  });

  it("reaches no provider for a request to the relay that did not come through access", async () => {
    const { logged } = await configure({ production_models: entries(a, b) });
    const through = await chat(bed.kong, HELLO);
    expect(through.status).toBe(200);
    await bed.kong.settled();
    a.clearRequests();
    b.clearRequests();
    const logged0 = logged()[0];
    const ticket = logged0?.request?.headers?.["x-model-based-round-robin-relay"];
    const direct = (headers: Record<string, string>) =>
      request(`http://127.0.0.1:${relayPort}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body: JSON.stringify(HELLO),
      });
    const attempts = [
      await direct({}),
      await direct({ "x-model-based-round-robin-relay": "0.AAAAAAAAAAAAAAAAAAAAAA" }),
      await direct({ "x-model-based-round-robin-relay": "not a ticket" }),
      // A ticket read back from a log line: single use, already taken.
      ...(typeof ticket === "string" ? [await direct({ "x-model-based-round-robin-relay": ticket })] : []),
    ];
    for (const res of attempts) {
      expect(res.statusCode).toBe(502);
      expect((await res.body.json()) as unknown).toMatchObject({ error: { code: "relay_refused" } });
    }
    expect(a.requests).toHaveLength(0);
    expect(b.requests).toHaveLength(0);
  });

  it("carries a 1 MB body without any PDK call for it, rewritten byte for byte; 4 calls in access and none in log", async () => {
    await configure({ production_models: entries(a, b) });
    await chat(bed.kong, HELLO);
    await bed.kong.settled();
    bed.kong.pdkCalls.reset();
    const raw = `{ "model" : "gpt-4.5", "input": "${"x".repeat(1024 * 1024)}", "n": 1e0 }`;
    const reply = await send(bed.kong, { body: raw });
    await bed.kong.settled();
    expect(reply.status).toBe(200);
    const received = [...a.requests, ...b.requests].at(-1);
    expect(received?.body.toString()).toBe(
      raw.replace('"gpt-4.5"', `"${reply.headers["x-kong-llm-model"]}"`),
    );
    expect(bed.kong.pdkCalls.byPhase("access")).toEqual({
      "kong.request.get_headers": 1,
      "kong.log.set_serialize_value": 1,
      "kong.service.request.set_header": 1,
      "kong.service.set_target": 1,
    });
    expect(bed.kong.pdkCalls.byPhase("log")).toEqual({});
  });

  it("holds no answer whole: 8 concurrent 60 MiB answers grow the plugin server by well under their size", async () => {
    const chunk = Buffer.alloc(1024 * 1024, "a");
    const big = await provider((req, res) => {
      req.resume();
      res.writeHead(200, {
        "content-type": "application/octet-stream",
        "content-length": String(60 * chunk.length),
      });
      let left = 60;
      const more = () => {
        while (left > 0) {
          left--;
          if (!res.write(chunk)) return void res.once("drain", more);
        }
        res.end();
      };
      more();
    });
    try {
      await configure({ production_models: [{ model: "big", endpoint: `${big.url}/v1` }] });
      const pid = bed.kong.server(PLUGIN_NAME).pid as number;
      await chat(bed.kong, HELLO); // the relay and its connections are up
      const baseline = peakRss(pid);
      const sizes = await Promise.all(
        Array.from({ length: 8 }, async () => {
          const res = await request(`${bed.kong.proxyUrl}/openai/v1/chat/completions`, {
            method: "POST",
            headers: { host: PRODUCTION_HOST, "content-type": "application/json" },
            body: JSON.stringify(HELLO),
          });
          let size = 0;
          for await (const part of res.body) size += part.length;
          return size;
        }),
      );
      expect(sizes).toEqual(Array(8).fill(60 * chunk.length));
      const growth = peakRss(pid) - baseline;
      // Held whole, they would take 480 MiB.
      expect(growth).toBeLessThan(100 * 1024 * 1024);
    } finally {
      await close(big.server);
    }
  }, 180_000);

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
    expect(received?.headers["x-model-based-round-robin-relay"]).toBeUndefined();
    expect(received?.headers["openai-organization"]).toBe("org-1");
    expect(received?.body.toString()).toBe('{ "model" : "keyed", "input": "Hello", "n": 1e0 }');
    expect(received?.headers["content-length"]).toBe(String(received?.body.length));
  });

  it("refuses what access used to refuse, without reaching a provider: not JSON, not an object, an unsafe path", async () => {
    await configure({ production_models: entries(a, b) });
    const notJson = await send(bed.kong, { body: "{not json" });
    expect(notJson.status).toBe(400);
    expect(notJson.json.error.code).toBe("invalid_body");
    const array = await send(bed.kong, { body: "[1,2]" });
    expect(array.status).toBe(400);
    expect(array.json.error.message).toMatch(/must be a JSON object/);
    const at = await send(bed.kong, { path: "/openai/v1/chat/completions@evil.test", body: HELLO });
    expect(at.status).toBe(400);
    expect(at.json.error.code).toBe("invalid_path");
    expect([...a.requests, ...b.requests]).toHaveLength(0);
  });

  it("passes a gzipped answer through as it is, with its content-encoding", async () => {
    await configure({ production_models: entries(a, b, c) });
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
    await configure({ production_models: entries(a, b) });
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

  it("fails over from an entry that does not answer within failover_attempt_timeout, and benches it", async () => {
    await configure({ production_models: entries(a, b), failover_attempt_timeout: 0.3 });
    a.failNext({ status: 200, delayMs: 3000 });
    const before = bed.kong.logs.length;
    const reply = await chat(bed.kong, HELLO);
    expect(reply.status).toBe(200);
    expect(reply.json.model).toBe("m2");
    expect(warnings(before, "benched")).toHaveLength(1);
  });

  it("holds the time budget: two slow providers, a 504 naming failover_timeout, the second never tried", async () => {
    await configure({ production_models: entries(a, b), failover_timeout: 1 });
    a.failNext({ status: 200, delayMs: 4000 });
    b.failNext({ status: 200, delayMs: 4000 });
    const reply = await chat(bed.kong, HELLO);
    expect(reply.status).toBe(504);
    expect(reply.json.error.code).toBe("upstream_timeout");
    expect(reply.json.error.message).toMatch(/failover budget of 1 s/);
    expect(b.requests).toHaveLength(0);
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
        await configure({ production_models: models });
        const verified = await chat(bed.kong, HELLO);
        expect(verified.json.model).toBe("m2"); // self-signed: refused, benched, the next entry answered
        expect(verified.headers["x-kong-llm-attempts"]).toBe("2");
        await configure({ production_models: models, tls_verify: false });
        const unverified = await chat(bed.kong, HELLO);
        expect(unverified.json.model).toBe("tls");
        expect(unverified.headers["x-kong-llm-attempts"]).toBe("1");
      } finally {
        server.close();
      }
    },
  );

  it("relays a request without a body (GET /models) unchanged, to the entry the rotation would pick next", async () => {
    await configure({ production_models: entries(a, b) });
    const reply = await send(bed.kong, { method: "GET", path: "/openai/v1/models" });
    expect(reply.status).toBe(200);
    expect(reply.headers["x-kong-llm-attempts"]).toBe("1");
    expect(a.requests.map((r) => [r.method, r.path, r.body.length])).toEqual([["GET", "/v1/models", 0]]);
  });

  it("with failover_attempts 0, Kong proxies to the entry directly: a 429 reaches the client and suspends in log", async () => {
    await configure({ production_models: entries(a, b), failover_attempts: 0 });
    bed.kong.pdkCalls.reset();
    a.failNext({ status: 429, headers: { "retry-after": "9" } });
    const reply = await chat(bed.kong, HELLO);
    await bed.kong.settled();
    expect(reply.status).toBe(429);
    expect(reply.headers["x-kong-llm-attempts"]).toBeUndefined();
    expect(bed.kong.pdkCalls.byPhase("access")["kong.request.get_raw_body"]).toBe(1);
    expect(bed.kong.pdkCalls.byPhase("log")["kong.response.get_status"]).toBe(1);
    const next = await chat(bed.kong, HELLO);
    expect(next.json.model).toBe("m2");
  });
});
