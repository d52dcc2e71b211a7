/** The proxy port: Kong's routing and a response streamed through without buffering. */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { resolve } from "node:path";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KongDouble } from "../../kong-double";

const FIXTURES = resolve(process.cwd(), "spec/fixtures/plugins");

describe("the double's proxy port", () => {
  let kong: KongDouble;
  let upstream: Server;
  let upstreamUrl: string;
  let finishedAt = 0;

  beforeAll(async () => {
    // An upstream that echoes what it received, or writes a chunk, waits, then ends.
    upstream = createServer((req, res) => {
      if (req.url?.endsWith("/slow")) {
        res.writeHead(200, { "content-type": "text/event-stream" });
        res.write("data: first\n\n");
        setTimeout(() => {
          finishedAt = Date.now();
          res.end("data: last\n\n");
        }, 400);
        return;
      }
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ path: req.url, host: req.headers.host, method: req.method }));
    });
    await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
    upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
    kong = await KongDouble.start({
      pluginServers: [{ name: "probe", pluginsDirectory: `${FIXTURES}/probe` }],
    });
    await kong.loadConfig({
      _format_version: "3.0",
      services: [
        {
          name: "svc",
          url: `${upstreamUrl}/svc`,
          routes: [
            { name: "prefix", paths: ["/api"] },
            { name: "longer", paths: ["/api/v2"], strip_path: false },
            { name: "regex", paths: ["~/users/(?<id>\\d+)$"] },
            { name: "hosted", paths: ["/api"], hosts: ["*.tenant.test"], methods: ["POST"] },
            { name: "slow", paths: ["/slow"], strip_path: false },
          ],
        },
      ],
    });
  });
  afterAll(async () => {
    await kong?.stop();
    await new Promise((r) => upstream?.close(r));
  });

  const get = async (path: string, opts: { method?: string; host?: string } = {}) => {
    const res = await request(`${kong.proxyUrl}${path}`, {
      method: (opts.method ?? "GET") as "GET",
      headers: opts.host ? { host: opts.host } : {},
    });
    return { status: res.statusCode, json: (await res.body.json()) as Record<string, string> };
  };

  it("strips a matched prefix and joins the service path", async () => {
    expect((await get("/api/chat")).json.path).toBe("/svc/chat");
  });

  it("prefers the longer prefix and keeps the path when strip_path is off", async () => {
    expect((await get("/api/v2/x")).json.path).toBe("/svc/api/v2/x");
  });

  it("matches regex paths and strips what the regex matched", async () => {
    expect((await get("/users/42")).json.path).toBe("/svc");
    expect((await get("/users/abc")).status).toBe(404);
  });

  it("prefers a route with more criteria (host wildcard + method) over a bare prefix", async () => {
    expect((await get("/api/x", { method: "POST", host: "a.tenant.test" })).json.path).toBe("/svc/x");
    expect((await get("/api/x", { method: "GET", host: "a.tenant.test" })).json.path).toBe("/svc/x");
  });

  it("answers Kong's 404 when no route matches", async () => {
    const reply = await get("/nothing");
    expect(reply.status).toBe(404);
    expect(reply.json.message).toBe("no Route matched with those values");
    expect(reply.json.request_id).toMatch(/^[0-9a-f]{32}$/);
  });

  it("sends the service's host and port as Host when no plugin set a target", async () => {
    expect((await get("/api/h")).json.host).toBe(upstreamUrl.replace("http://", ""));
  });

  it("streams the response: the first chunk reaches the client before the upstream has finished", async () => {
    const res = await request(`${kong.proxyUrl}/slow`);
    let firstChunkAt = 0;
    let text = "";
    for await (const chunk of res.body) {
      if (firstChunkAt === 0) firstChunkAt = Date.now();
      text += chunk.toString();
    }
    expect(text).toBe("data: first\n\ndata: last\n\n");
    expect(firstChunkAt).toBeGreaterThan(0);
    expect(finishedAt - firstChunkAt).toBeGreaterThan(250);
  });
});
