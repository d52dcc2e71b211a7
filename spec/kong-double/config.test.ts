/** Declarative configuration and Admin API validation, with Kong's 400 shapes. */

import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KongApiError, KongDouble } from "../../kong-double";

const FIXTURES = resolve(process.cwd(), "spec/fixtures/plugins");

describe("configuration as Kong validates it", () => {
  let kong: KongDouble;
  beforeAll(async () => {
    kong = await KongDouble.start({
      pluginServers: [{ name: "probe", pluginsDirectory: `${FIXTURES}/probe` }],
    });
  });
  afterAll(async () => kong?.stop());

  const post = async (body: unknown) => {
    const res = await fetch(`${kong.adminUrl}/config`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };

  it("loads services with url or host/port/path, nested and top-level routes and plugins, filling defaults", async () => {
    const config = await kong.loadConfig(`
_format_version: "3.0"
services:
- name: a
  url: https://api.example.test/v1
  routes:
  - name: nested
    paths: [/a]
- name: b
  host: b.example.test
  port: 8080
  path: /x
routes:
- name: top
  service: b
  hosts: [b.local]
  methods: [POST]
plugins:
- name: probe
  route: top
- name: probe
`);
    expect(config.services[0]).toMatchObject({
      protocol: "https",
      host: "api.example.test",
      port: 443,
      path: "/v1",
      retries: 5,
    });
    expect(config.routes.find((r) => r.name === "nested")).toMatchObject({
      strip_path: true,
      preserve_host: false,
      path_handling: "v0",
    });
    expect(config.routes.find((r) => r.name === "top")?.service?.id).toBe(config.services[1]?.id);
    expect(config.plugins.map((p) => p.config)).toEqual([{ message: "hello" }, { message: "hello" }]);
    expect(config.plugins[0]?.route?.id).toBe(config.routes.find((r) => r.name === "top")?.id);
  });

  it("gives entities the same ids when the same file is loaded again (Kong's UUID v5 of name or cache key)", async () => {
    const file = {
      _format_version: "3.0",
      services: [{ name: "s", url: "http://x.test", plugins: [{ name: "probe" }] }],
    };
    const first = await kong.loadConfig(file);
    const second = await kong.loadConfig(file);
    expect(second.plugins[0]?.id).toBe(first.plugins[0]?.id);
    expect(second.services[0]?.id).toBe(first.services[0]?.id);
  });

  it("answers POST /config with Kong's 400 naming unknown fields, wrong types and unknown plugins", async () => {
    const reply = await post({
      _format_version: "3.0",
      services: [
        {
          name: "s",
          url: "http://x.test",
          plugins: [{ name: "probe", config: { message: 5, extra: true } }, { name: "not-installed" }],
        },
      ],
    });
    expect(reply.status).toBe(400);
    expect(reply.body).toMatchObject({
      code: 14,
      name: "invalid declarative configuration",
      fields: {
        services: {
          0: {
            plugins: {
              0: { config: { message: "expected a string", extra: "unknown field" } },
              1: {
                name: "plugin 'not-installed' not enabled; add it to the 'plugins' configuration property",
              },
            },
          },
        },
      },
    });
  });

  it("requires _format_version", async () => {
    await expect(kong.loadConfig({ services: [] })).rejects.toBeInstanceOf(KongApiError);
    expect((await post({ services: [] })).body.fields).toEqual({ _format_version: "required field missing" });
  });

  it("answers GET / with the version, DB-less mode and the plugins available (a plugin server run outside Kong)", async () => {
    // A managed plugin server makes Kong 3.9.1-3.9.3's GET / fail (spec/kong-double/external-server.test.ts).
    const outside = await KongDouble.start({
      pluginServers: [{ name: "probe", pluginsDirectory: `${FIXTURES}/probe`, external: true }],
    });
    const res = await fetch(`${outside.adminUrl}/`);
    const text = await res.text().finally(() => outside.stop());
    expect(res.status).toBe(200);
    const body = JSON.parse(text) as {
      version: string;
      configuration: { database: string };
      plugins: { available_on_server: object };
    };
    // One Kong version everywhere: the one the image runs (kong/Dockerfile's last FROM kong:x.y.z).
    const image = /^FROM kong:(\d+\.\d+\.\d+)\s*$/m.exec(readFileSync("kong/Dockerfile", "utf8"))?.[1];
    expect(image).toBe("3.9.1");
    expect(body.version).toBe(image);
    expect(body.configuration.database).toBe("off");
    expect(Object.keys(body.plugins.available_on_server)).toEqual(
      expect.arrayContaining(["probe", "key-auth"]),
    );
  });
});
