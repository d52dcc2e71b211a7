/**
 * How the double reports what Kong reports when the upstream fails (refused, reset, hung, a name that does not
 * resolve), with nginx's retries, and the path Kong routes on (normalised) versus the one it was sent.
 */
import { createServer as createHttpServer, request, type Server } from "node:http";
import { type AddressInfo, createServer, type Socket } from "node:net";
import { resolve } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { KongDouble } from "../../kong-double";

const FIXTURE = resolve(process.cwd(), "spec/kong-double/fixtures/source");

/** A TCP server that counts connections and does `behaviour` with each. */
async function tcpServer(behaviour: (socket: Socket) => void) {
  const sockets = new Set<Socket>();
  let connections = 0;
  const server = createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => undefined);
    behaviour(socket);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as AddressInfo).port,
    get connections() {
      return connections;
    },
    reset() {
      connections = 0;
    },
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

describe("upstream failures and paths, as Kong reports them", () => {
  let kong: KongDouble;
  let echo: Server;
  let echoPort: number;
  let hung: Awaited<ReturnType<typeof tcpServer>>;
  let resetting: Awaited<ReturnType<typeof tcpServer>>;
  let dead: number;

  beforeAll(async () => {
    echo = createHttpServer((req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ path: req.url }));
    });
    await new Promise<void>((r) => echo.listen(0, "127.0.0.1", r));
    echoPort = (echo.address() as AddressInfo).port;
    hung = await tcpServer(() => undefined);
    // Reads the request, then answers with a TCP reset.
    resetting = await tcpServer((socket) => socket.once("data", () => socket.resetAndDestroy()));
    dead = await freePort();
    kong = await KongDouble.start({ pluginServers: [{ name: "source", pluginsDirectory: FIXTURE }] });
    const service = (name: string, url: string, retries: number, routes: object[]) => ({
      name,
      url,
      retries,
      connect_timeout: 200,
      write_timeout: 200,
      read_timeout: 200,
      routes,
      plugins: [{ name: "source" }],
    });
    await kong.loadConfig({
      _format_version: "3.0",
      services: [
        service("echo", `http://127.0.0.1:${echoPort}/svc`, 0, [{ name: "echo", paths: ["/api"] }]),
        service("retrying", `http://127.0.0.1:${echoPort}/svc`, 2, [{ name: "retrying", paths: ["/retry"] }]),
        service("unrouted", "http://unrouted.model-based-round-robin.invalid:9/v1", 0, [
          { name: "unrouted", paths: ["/unrouted"] },
        ]),
      ],
    });
  });
  afterAll(async () => {
    await kong?.stop();
    await hung?.close();
    await resetting?.close();
    await new Promise((r) => echo?.close(r));
  });
  beforeEach(() => {
    hung.reset();
    resetting.reset();
  });

  async function send(path: string, opts: { method?: string; target?: string; headers?: object } = {}) {
    const startedAt = Date.now();
    // node:http sends the path as given; fetch and undici would normalise it first (WHATWG URL parsing).
    const { status, contentType, text, headers } = await new Promise<{
      status: number;
      contentType: string | undefined;
      text: string;
      headers: Record<string, string | string[] | undefined>;
    }>((resolveReply, reject) => {
      const { hostname, port } = new URL(kong.proxyUrl);
      const req = request(
        {
          hostname,
          port,
          path,
          method: opts.method ?? "GET",
          headers: { ...(opts.target && { "x-target": opts.target }), ...opts.headers },
        },
        (res) => {
          let body = "";
          res.on("data", (c) => {
            body += c;
          });
          res.on("end", () =>
            resolveReply({
              status: res.statusCode ?? 0,
              contentType: res.headers["content-type"],
              text: body,
              headers: res.headers,
            }),
          );
        },
      );
      req.on("error", reject);
      req.end(opts.method === "POST" ? "{}" : undefined);
    });
    await kong.settled();
    const notice = kong.logs.filter((l) => l.plugin === "source" && l.level === "notice").at(-1);
    return {
      status,
      contentType,
      text,
      headers,
      ms: Date.now() - startedAt,
      log: JSON.parse(notice?.message.replace(/^\[source\] /, "") ?? "{}"),
    };
  }

  it("answers a refused connection with Kong's own 502 after 1 + retries tries (source 'error')", async () => {
    const reply = await send("/retry/x", { target: `127.0.0.1:${dead}` });
    expect(reply.status).toBe(502);
    // No Accept and no Content-Type: Kong's error_default_type, text/plain.
    expect(reply.contentType).toBe("text/plain; charset=utf-8");
    expect(reply.text).toMatch(
      /^An invalid response was received from the upstream server\nrequest_id: \w+\n$/,
    );
    expect(reply.log).toMatchObject({ status: 502, source: "error", upstream_status: "502, 502, 502" });
  });

  it("picks the error format from Accept, then Content-Type", async () => {
    const json = await send("/api/x", {
      target: `127.0.0.1:${dead}`,
      headers: { accept: "application/json" },
    });
    expect(JSON.parse(json.text).message).toBe("An invalid response was received from the upstream server");
    const byType = await send("/api/x", {
      method: "POST",
      target: `127.0.0.1:${dead}`,
      headers: { "content-type": "application/json" },
    });
    expect(byType.contentType).toBe("application/json; charset=utf-8");
  });

  it("retries a reset GET but not a reset POST (nginx never resends a sent non-idempotent request)", async () => {
    const get = await send("/retry/x", { target: `127.0.0.1:${resetting.port}` });
    expect(get.status).toBe(502);
    expect(resetting.connections).toBe(3);
    expect(get.log).toMatchObject({ source: "error", upstream_status: "502, 502, 502" });
    resetting.reset();
    const post = await send("/retry/x", { method: "POST", target: `127.0.0.1:${resetting.port}` });
    expect(post.status).toBe(502);
    expect(resetting.connections).toBe(1);
  });

  it("answers a hung upstream with 504 after read_timeout, per try for a GET, once for a POST", async () => {
    const get = await send("/retry/x", { target: `127.0.0.1:${hung.port}` });
    expect(get.status).toBe(504);
    expect(get.text).toMatch(/^The upstream server is timing out\n/);
    expect(hung.connections).toBe(3);
    expect(get.ms).toBeGreaterThanOrEqual(3 * 200 - 20);
    expect(get.log).toMatchObject({ status: 504, source: "error", upstream_status: "504, 504, 504" });
    hung.reset();
    const post = await send("/retry/x", { method: "POST", target: `127.0.0.1:${hung.port}` });
    expect(post.status).toBe(504);
    expect(hung.connections).toBe(1);
    expect(post.ms).toBeLessThan(2 * 200);
  });

  it("answers a host that does not resolve with kong.response.error's 503 (source 'exit', nothing sent)", async () => {
    const service = await send("/unrouted/x");
    expect(service.status).toBe(503);
    expect(service.contentType).toBe("application/json; charset=utf-8");
    expect(JSON.parse(service.text).message).toBe("name resolution failed");
    expect(service.log).toMatchObject({ status: 503, source: "exit" });
    // No $upstream_status: the log data says "" (kong/pdk/log.lua serialize).
    expect(service.log.upstream_status).toBe("");
    // set_target to a name that does not resolve, from a service with a host name (an IP host never resolves it).
    const target = await send("/unrouted/x", { target: "nowhere.model-based-round-robin.invalid:443" });
    expect(target.status).toBe(503);
    expect(target.log).toMatchObject({ status: 503, source: "exit" });
  });

  it("answers set_target to a host name on a service with an IP host with Kong's 500 'no host allowed' (source 'error', nothing sent)", async () => {
    let reached = 0;
    echo.on("request", () => reached++);
    const named = await send("/api/x", { target: `localhost:${echoPort}` });
    expect(named.status).toBe(500);
    // nginx's error_page → Kong's error handler: error_default_type (text/plain) without Accept or Content-Type.
    expect(named.contentType).toBe("text/plain; charset=utf-8");
    expect(named.text).toMatch(/^An unexpected error occurred\nrequest_id: /);
    expect(named.log).toMatchObject({ status: 500, source: "error" });
    expect(reached).toBe(0);
    expect(kong.logs.map((l) => l.message)).toContain(
      `failed to set the current peer (address: localhost port: ${echoPort}): no host allowed`,
    );
    // An IP target on the same service, and an IP target on a service with a host name, are reached.
    expect((await send("/api/x", { target: `127.0.0.1:${echoPort}` })).status).toBe(200);
    const fromName = await send("/unrouted/x", { target: `127.0.0.1:${echoPort}` });
    expect(fromName).toMatchObject({ status: 200, log: { status: 200, source: "service" } });
    expect(reached).toBe(2);
  });

  it("routes on the normalised path and builds $upstream_uri from it", async () => {
    const cases: [string, string][] = [
      ["/api/v1/models/../files", "/svc/v1/files"],
      ["/api/v1/models/%2e%2e/files", "/svc/v1/files"],
      ["/api//v1//chat/./completions", "/svc/v1/chat/completions"],
      ["/x/../api/%41%7e", "/svc/A~"],
      ["/api/a%2fb%40c", "/svc/a%2Fb%40c"],
      ["/api/caf%c3%a9%20x", "/svc/caf%C3%A9%20x"],
    ];
    for (const [path, upstream] of cases) {
      const reply = await send(path);
      expect([path, JSON.parse(reply.text).path]).toEqual([path, upstream]);
      expect(reply.log.upstreamUri).toBe(upstream);
    }
  });

  it("refuses, as nginx does, a path whose '..' climbs above the root", async () => {
    const reply = await send("/api/../../etc");
    expect(reply.status).toBe(400);
    expect(reply.text).toMatch(/^Bad request\n/);
  });

  it("refuses, as nginx does, %00 or a broken escape in the path before any plugin runs", async () => {
    for (const path of ["/api/a%00b", "/api/%00", "/api/a%zzb", "/api/a%4"]) {
      const reply = await send(path, { headers: { "x-set-headers": "1" } });
      // nginx's 400 through Kong's error handler: error_default_type without Accept or Content-Type.
      expect([path, reply.status, reply.contentType]).toEqual([path, 400, "text/plain; charset=utf-8"]);
      expect(reply.text).toMatch(/^Bad request\nrequest_id: \w+\n$/);
      // No plugin ran: no header of its access, no log phase.
      expect(reply.headers["x-set-in-access"]).toBeUndefined();
    }
    // In the query string nginx decodes nothing: the request is routed and proxied.
    expect((await send("/api/x?q=%00")).status).toBe(200);
  });

  it("keeps the headers a plugin set in access on Kong's own 502 and 504 pages", async () => {
    const refused = await send("/api/x", { target: `127.0.0.1:${dead}`, headers: { "x-set-headers": "1" } });
    expect(refused.status).toBe(502);
    expect(refused.headers["x-set-in-access"]).toBe("yes");
    expect(refused.headers["x-model"]).toEqual("a, b");
    expect(refused.contentType).toBe("text/plain; charset=utf-8");
    const timedOut = await send("/api/x", {
      method: "POST",
      target: `127.0.0.1:${hung.port}`,
      headers: { "x-set-headers": "1" },
    });
    expect(timedOut.status).toBe(504);
    expect(timedOut.headers["x-set-in-access"]).toBe("yes");
    // And on a proxied answer, as before.
    const proxied = await send("/api/x", { headers: { "x-set-headers": "1" } });
    expect([proxied.status, proxied.headers["x-set-in-access"]]).toEqual([200, "yes"]);
  });

  it("gives logging plugins Kong's log fields: source upstream/kong, latencies, tries, workspace", async () => {
    const proxied = await send("/api/x");
    expect(proxied.log.source).toBe("service");
    const line = proxied.log.logged;
    expect(line.source).toBe("upstream");
    expect(line.workspace).toMatch(/^[0-9a-f-]{36}$/);
    expect(line.workspace_name).toBe("default");
    expect(Object.keys(line.latencies).sort()).toEqual(["kong", "proxy", "receive", "request"]);
    for (const value of Object.values(line.latencies)) expect(value).toBeGreaterThanOrEqual(0);
    expect(line.tries).toHaveLength(1);
    expect(line.tries[0]).toMatchObject({ ip: "127.0.0.1", port: echoPort });
    expect(line.tries[0].state).toBeUndefined();

    // Three refused tries: the first two carry their failure, the last none; Kong's page: source "kong".
    const refused = await send("/retry/x", { target: `127.0.0.1:${dead}` });
    expect(refused.log.source).toBe("error");
    expect(refused.log.logged.source).toBe("kong");
    expect(refused.log.logged.tries.map((t: { state?: string; code?: number }) => [t.state, t.code])).toEqual(
      [
        ["failed", 502],
        ["failed", 502],
        [undefined, undefined],
      ],
    );

    // An exit (kong.response.error's 503): source "kong", no tries (an empty array), proxy -1, receive 0.
    const exit = await send("/unrouted/x");
    expect(exit.log.source).toBe("exit");
    expect(exit.log.logged).toMatchObject({ source: "kong", tries: [], workspace_name: "default" });
    expect(exit.log.logged.latencies).toMatchObject({ proxy: -1, receive: 0 });
    expect(exit.log.upstream_status).toBe("");
  });
});
