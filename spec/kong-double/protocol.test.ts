/**
 * The Kong double against the real kong-js-pluginserver, with a fixture plugin that reports what the PDK
 * returned: Kong's encodings, exits, calls Kong rejects, the log snapshot, and instance recovery.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KongDouble } from "../../kong-double";
import { KONG_VERSION } from "../../kong-double/config/kong-version";
import { type MockProvider, startMockProvider } from "../../scripts/mock-provider";
import { probeService } from "../support/double-tests";

const FIXTURES = resolve(process.cwd(), "spec/fixtures/plugins");

describe("the Kong double speaking Kong's side of the plugin protocol", () => {
  let kong: KongDouble;
  let upstream: MockProvider;

  beforeAll(async () => {
    upstream = await startMockProvider({ name: "upstream" });
    kong = await KongDouble.start({
      pluginServers: [{ name: "probe", pluginsDirectory: `${FIXTURES}/probe` }],
    });
    await kong.loadConfig(probeService(upstream.url));
  });
  afterAll(async () => {
    await kong?.stop();
    await upstream?.close();
  });

  const call = async (
    probe: string,
    opts: { path?: string; body?: string; headers?: Record<string, string> } = {},
  ) => {
    const res = await request(`${kong.proxyUrl}${opts.path ?? "/probe/x"}`, {
      method: opts.body === undefined ? "GET" : "POST",
      headers: { "x-probe": probe, ...opts.headers },
      body: opts.body,
    });
    const text = await res.body.text();
    return { status: res.statusCode, headers: res.headers, text, json: safeJson(text) };
  };

  it("sends raw bodies as binary, header maps with array values, only the first return value, nil as undefined", async () => {
    const reply = await call("encodings", {
      path: "/probe/x?a=1&a=2&flag",
      body: "raw ✓ body",
      headers: { "x-multi": "one" },
    });
    expect(reply.status).toBe(200);
    expect(reply.json).toMatchObject({
      bodyIsBuffer: true,
      bodyText: "raw ✓ body",
      missing: "undefined",
      upstream: "undefined", // (nil, "could not find an Upstream ...") arrives as nil: the error is lost
      // The flag arrives as [] (fix_mmap), goes back to Kong in the exit body as an empty Lua table: cjson {}.
      query: { a: ["1", "2"], flag: {} },
      config: { message: "configured" },
    });
    expect(reply.json.headers["x-multi"]).toEqual(["one"]);
    expect(reply.json.headers["x-probe"]).toEqual(["encodings"]);
  });

  it("starts the instance with Kong's config: defaults, __plugin_id, __seq__, service_id", async () => {
    const reply = await call("encodings", { body: "" });
    const config = reply.json.config;
    expect(config.__plugin_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(typeof config.__seq__).toBe("number");
    expect(config.__key__).toContain("plugins:probe:");
    expect(config.service_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(config).not.toHaveProperty("route_id");
  });

  it("ends the event on kong.response.exit and never answers a later call", async () => {
    const reply = await call("exit-then-continue");
    expect(reply.status).toBe(418);
    expect(reply.json).toEqual({ teapot: true });
    expect(reply.headers["x-exit"]).toBe("yes");
    expect(reply.headers["content-type"]).toMatch(/application\/json/);
  });

  it("lets an exit's own headers win over those set in access, and keeps the others (K3.9.3 response.lua send)", async () => {
    const text = await call("headers-then-exit");
    expect(text.status).toBe(403);
    expect(text.headers["x-both"]).toBe("exit");
    expect(text.headers["x-access-only"]).toBe("kept");
    // A string body: the Content-Type access set stays; a table body: send sets application/json over it.
    expect(text.headers["content-type"]).toBe("text/plain");
    const table = await call("headers-then-exit", { headers: { "x-table": "yes" } });
    expect(table.headers["x-both"]).toBe("exit");
    expect(table.headers["content-type"]).toBe("application/json; charset=utf-8");
    expect(table.json).toEqual({ denied: true });
  });

  it.each([
    ["nil-header", /invalid header value/],
    ["wrong-phase", /cannot be called in access phase/],
  ])("turns a call Kong rejects (%s) into Kong's 500 and a logged Lua error", async (probe, logged) => {
    const reply = await call(probe);
    expect(reply.status).toBe(500);
    expect(reply.json).toEqual({
      message: "An unexpected error occurred",
      request_id: reply.headers["x-kong-request-id"],
    });
    expect(kong.logs.some((l) => l.source === "kong" && logged.test(l.message))).toBe(true);
  });

  it("converts what the plugin sends as Kong's MessagePack → Lua → cjson path does", async () => {
    const reply = await call("lua-values");
    expect(reply.status).toBe(200);
    // nil keys disappear; a hole is null only between values; an empty table is {}; bin is a string; / is \/.
    expect(reply.json).toEqual({
      kept: 1.5,
      holes: [1, null, 3],
      trailing: [1],
      empty: {},
      emptyObject: {},
      allNil: {},
      bin: "bytes/ok",
    });
    expect(reply.text).toContain('"bin":"bytes\\/ok"');
    expect(reply.text).not.toContain("gone");
    expect(reply.headers["content-type"]).toBe("application/json; charset=utf-8");
    // Header values: Lua's tostring for a number or boolean, "" sent as " ", bin as a string.
    expect(reply.headers["x-number"]).toBe("2");
    expect(reply.headers["x-flag"]).toBe("true");
    expect(reply.headers["x-list"]).toEqual(["a", ""]); // " " on the wire, trimmed by the HTTP parser
    expect(reply.headers["x-bin"]).toBe("bin");
  });

  it("answers a body cjson cannot encode with nginx's 500 page, as Kong raises while flushing the exit", async () => {
    const reply = await call("unencodable", { headers: { accept: "application/json" } });
    expect(reply.status).toBe(500);
    expect(reply.json).toEqual({
      message: "An unexpected error occurred",
      request_id: reply.headers["x-kong-request-id"],
    });
    expect(
      kong.logs.some((l) =>
        /body encoding failed while flushing response: Cannot serialise number/.test(l.message),
      ),
    ).toBe(true);
  });

  it("hands a kept table back as lua-MessagePack packs it: a hole makes a map, an empty table an array", async () => {
    await call("shared-holes");
    await kong.settled();
    const notice = kong.logs.findLast((l) => l.source === "pdk" && l.message.includes('"allNil"'));
    expect(JSON.parse(notice?.message.replace(/^\[probe\] /, "") ?? "{}").shared).toEqual({
      list: { "1": 1, "3": 3 },
      empty: [],
      allNil: [],
    });
  });

  it("adds X-Kong-Request-Id to every response, and sends it upstream; error bodies carry the same id", async () => {
    const exited = await call("exit-then-continue");
    expect(exited.headers["x-kong-request-id"]).toMatch(/^[0-9a-f]{32}$/);
    expect(exited.headers["x-kong-response-latency"]).toMatch(/^\d+$/);
    expect(exited.headers.server).toBe(`kong/${KONG_VERSION}`);
    const noRoute = await request(`${kong.proxyUrl}/nowhere`);
    const body = (await noRoute.body.json()) as { request_id: string };
    expect(noRoute.statusCode).toBe(404);
    expect(body.request_id).toBe(noRoute.headers["x-kong-request-id"]);
    upstream.clearRequests();
    const proxied = await call("none");
    const id = proxied.headers["x-kong-request-id"];
    expect(id).toMatch(/^[0-9a-f]{32}$/);
    expect(upstream.requests[0]?.headers["x-kong-request-id"]).toBe(id);
    expect(proxied.headers.via).toBe(`1.1 kong/${KONG_VERSION}`);
    expect(proxied.headers["x-kong-response-latency"]).toBeUndefined();
  });

  it("logs an unknown PDK method and answers it with nil", async () => {
    const reply = await call("unknown-method");
    expect(reply.json).toEqual({ undefined: true });
    expect(kong.logs.some((l) => /could not find pdk method: kong.nosuch.thing/.test(l.message))).toBe(true);
  });

  it("applies set_target, set_path, set_raw_body and headers to the real upstream request", async () => {
    upstream.clearRequests();
    const target = { host: "127.0.0.1", port: upstream.port, path: "/elsewhere" };
    const reply = await call("rewrite-upstream", {
      path: "/probe/x?keep=1",
      body: "original",
      headers: { "x-target": JSON.stringify(target) },
    });
    expect(reply.status).toBe(404); // the mock answers 404 to unknown paths: what matters is what it received
    const seen = upstream.requests[0];
    expect(seen?.path).toBe("/elsewhere");
    expect(seen?.query).toBe("keep=1");
    expect(seen?.body.toString()).toBe("rewritten body");
    expect(seen?.headers["content-length"]).toBe("14");
    expect(seen?.headers["x-added"]).toBe("by-probe");
    expect(seen?.headers.host).toBe("127.0.0.1"); // exactly the target host, no port
  });

  it("computes $upstream_uri from the service path and the stripped request path", async () => {
    upstream.clearRequests();
    await call("none", { path: "/probe/chat/completions" });
    expect(upstream.requests[0]?.path).toBe("/base/chat/completions");
  });

  it("runs log after the response, with the saved status and ctx.shared; ngx.var getters there never answer", async () => {
    await call("log-ngx-var");
    await kong.settled();
    const notices = kong.logs.filter((l) => l.source === "pdk" && l.level === "notice").map((l) => l.message);
    const last = notices.findLast((m) => m.includes('"tryPath":true'));
    expect(last).toContain('"status":404');
    expect(last).toContain('"upstream_status":"404"');
    expect(notices.some((m) => m.includes("unreachable"))).toBe(false);
    expect(
      kong.logs.some((l) => /kong.request.get_path: function cannot be called in log phase/.test(l.message)),
    ).toBe(true);
  });

  it("returns at most 100 request headers from get_headers without an argument, as lua_max_req_headers does", async () => {
    const many = Object.fromEntries(Array.from({ length: 150 }, (_, i) => [`x-filler-${i}`, String(i)]));
    const reply = await call("encodings", { headers: many });
    expect(Object.keys(reply.json.headers)).toHaveLength(100);
  });

  it("proxies a request buffered after enable_buffering: log reads the service's body and status", async () => {
    const reply = await call("buffered", { path: "/probe/models" });
    await kong.settled();
    expect(reply.status).toBe(200);
    const notice = kong.logs.findLast((l) => l.source === "pdk" && l.message.includes('"isBuffer"'));
    expect(JSON.parse(notice?.message.replace(/^\[probe\] /, "") ?? "{}")).toEqual({
      buffering: true,
      isBuffer: true,
      body: reply.text,
      ctxBodyType: "string",
      serviceStatus: 200,
    });
  });

  it("turns buffering off for a WebSocket upgrade: the service's body is then refused in log", async () => {
    kong.logs.length = 0;
    const status = await new Promise<number | undefined>((resolveStatus, reject) => {
      const url = new URL(`${kong.proxyUrl}/probe/models`);
      const req = httpRequest(
        {
          host: url.hostname,
          port: url.port,
          path: url.pathname,
          headers: { "x-probe": "buffered", upgrade: "websocket" },
        },
        (res) => {
          res.resume();
          res.on("end", () => resolveStatus(res.statusCode));
        },
      );
      req.on("error", reject);
      req.end();
    });
    await kong.settled();
    expect(status).toBe(200);
    expect(kong.logs.some((l) => l.message.includes('"isBuffer"'))).toBe(false);
    expect(
      kong.logs.some((l) => /service body is only available with buffered proxying/.test(l.message)),
    ).toBe(true);
  });

  it("applies kong.log.set_serialize_value edits to the log data a bundled file-log writes, and sends set_headers' headers", async () => {
    const dir = mkdtempSync(join(tmpdir(), "file-log-"));
    const path = join(dir, "requests.log");
    await kong.loadConfig(probeService(upstream.url, "configured", { name: "file-log", config: { path } }));
    try {
      const reply = await call("serialize-values");
      await kong.settled();
      expect(reply.headers["x-one"]).toBe("1");
      expect(reply.headers["x-two"]).toEqual(["a", "b"]);
      const lines = readFileSync(path, "utf8").trim().split("\n");
      expect(lines).toHaveLength(1);
      const logged = JSON.parse(lines[0] as string);
      // `add` leaves the model set before; `replace` of a missing chain creates nothing.
      expect(logged.probe).toEqual({ choice: { model: "m1", nested: { n: 2 } }, flag: true });
      expect(logged.response.status).toBe(reply.status);
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await kong.loadConfig(probeService(upstream.url));
    }
  });

  it("counts PDK calls per phase and method", async () => {
    await kong.settled();
    kong.pdkCalls.reset();
    await call("none");
    await kong.settled();
    expect(kong.pdkCalls.byPhase("access")).toEqual({
      "kong.request.get_header": 1,
      "kong.nginx.get_var": 1,
      "kong.ctx.shared.set": 1,
    });
    expect(kong.pdkCalls.total("log")).toBe(4);
  });

  it("starts a new instance after a config reload (a new __seq__)", async () => {
    const before = (await call("encodings", { body: "" })).json.config.__seq__;
    const startedBefore = kong.server("probe").started.length;
    await kong.loadConfig(probeService(upstream.url, "reloaded"));
    const after = (await call("encodings", { body: "" })).json.config;
    expect(after.__seq__).toBeGreaterThan(before);
    expect(after.message).toBe("reloaded");
    expect(kong.server("probe").started.length).toBe(startedBefore + 1);
  });

  it("respawns a killed plugin server and recovers through the 'no plugin instance' path", async () => {
    const server = kong.server("probe");
    const oldPid = server.pid;
    server.kill("SIGKILL");
    await waitFor(() => server.pid !== undefined && server.pid !== oldPid, 5000);
    await server.whenReady();
    // Kong still holds the old instance id; the new server answers "no plugin instance", Kong restarts it.
    const reply = await call("encodings", { body: "" });
    expect(reply.status).toBe(200);
    expect(kong.logs.some((l) => /no plugin instance/.test(l.message))).toBe(true);
    expect(kong.logs.some((l) => /external pluginserver 'probe' terminated/.test(l.message))).toBe(true);
  });
});

function safeJson(text: string) {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

async function waitFor(condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 50));
  }
}
