/**
 * The bundled request-termination plugin as the double emulates it (K3.9.3 kong/plugins/request-termination/
 * schema.lua and handler.lua): Kong answers by itself, after every other plugin's access.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { resolve } from "node:path";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KongApiError, KongDouble } from "../../kong-double";

const FIXTURES = resolve(process.cwd(), "spec/fixtures/plugins");

describe("request-termination", () => {
  let kong: KongDouble;
  let upstream: Server;
  let hits = 0;

  const route = (name: string, config: Record<string, unknown>) => ({
    name,
    paths: [`/${name}`],
    plugins: [{ name: "request-termination", config }],
  });

  beforeAll(async () => {
    upstream = createServer((_req, res) => {
      hits++;
      res.end("upstream");
    });
    await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
    kong = await KongDouble.start({
      pluginServers: [{ name: "probe", pluginsDirectory: `${FIXTURES}/probe` }],
    });
    await kong.loadConfig({
      _format_version: "3.0",
      services: [
        {
          name: "svc",
          url: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`,
          routes: [
            route("default", {}),
            route("bare429", { status_code: 429 }),
            route("message", { status_code: 429, message: "API rate limit exceeded" }),
            route("raw", { status_code: 418, body: "<teapot/>", content_type: "application/xml" }),
            route("triggered", { status_code: 403, trigger: "X-Stop" }),
          ],
        },
      ],
    });
  });
  afterAll(async () => {
    await kong?.stop();
    await new Promise((r) => upstream?.close(r));
  });

  const get = async (path: string, headers: Record<string, string> = {}) => {
    const res = await request(`${kong.proxyUrl}${path}`, { headers });
    return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
  };

  it("answers 503 Service unavailable by default, as JSON, without reaching the service", async () => {
    const reply = await get("/default");
    expect(reply.status).toBe(503);
    expect(JSON.parse(reply.text)).toEqual({ message: "Service unavailable" });
    expect(reply.headers["content-type"]).toBe("application/json; charset=utf-8");
    expect(reply.headers["x-kong-response-latency"]).toBeDefined();
    expect(hits).toBe(0);
  });

  it("sends no body for a status without a default message (429), the configured message otherwise", async () => {
    const bare = await get("/bare429");
    expect([bare.status, bare.text]).toEqual([429, ""]);
    const message = await get("/message");
    expect([message.status, JSON.parse(message.text)]).toEqual([429, { message: "API rate limit exceeded" }]);
  });

  it("sends a raw body with its content type", async () => {
    const reply = await get("/raw");
    expect([reply.status, reply.text, reply.headers["content-type"]]).toEqual([
      418,
      "<teapot/>",
      "application/xml",
    ]);
  });

  it("with a trigger, answers only when the header or query argument is present", async () => {
    expect((await get("/triggered")).text).toBe("upstream");
    expect((await get("/triggered", { "x-stop": "1" })).status).toBe(403);
    expect((await get("/triggered?X-Stop")).status).toBe(403);
    expect(hits).toBe(1);
  });

  it("rejects what the schema's custom_validator rejects, and a status outside 100-599", async () => {
    const load = (config: Record<string, unknown>) =>
      kong.loadConfig({
        _format_version: "3.0",
        services: [{ name: "s", url: "http://127.0.0.1:9", routes: [route("r", config)] }],
      });
    for (const [config, message] of [
      [{ message: "a", body: "b" }, "message cannot be used with content_type or body"],
      [{ content_type: "text/plain" }, "content_type requires a body"],
      [{ echo: true, body: "b" }, "echo cannot be used with content_type and body"],
      [{ status_code: 600 }, "value should be between 100 and 599"],
    ] as const) {
      const error = await load(config).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(KongApiError);
      expect(JSON.stringify((error as KongApiError).body)).toContain(message);
    }
  });
});
