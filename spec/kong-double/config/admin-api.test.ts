import { describe, expect, it } from "vitest";
import { createAdminApi } from "../../../kong-double/config/admin-api";
import { BUNDLED_PLUGINS } from "../../../kong-double/config/bundled-schemas";
import { ConfigStore } from "../../../kong-double/config/config-store";
import { KONG_VERSION } from "../../../kong-double/config/kong-version";
import type { KongConfig, PluginInfo } from "../../../kong-double/config/model";

const GREETER: PluginInfo = {
  name: "greeter",
  version: "1.0.0",
  priority: 10,
  phases: ["access"],
  server: "greeter",
  configFields: [
    { greeting: { type: "string", default: "hello" } },
    { weight: { type: "integer", between: [1, 65535], default: 1 } },
    { note: { type: "string" } },
  ],
};
/** A service with a route and the greeter plugin on the route, as a declarative file. */
const SERVICE_WITH_GREETER = `
_format_version: "3.0"
services:
- name: svc
  host: upstream.test
  routes:
  - name: r
    paths: [/]
    plugins:
    - name: greeter
`;
const PLUGINS = new Map<string, PluginInfo>([...BUNDLED_PLUGINS, [GREETER.name, GREETER]]);

function setup(database: "off" | "postgres") {
  const store = new ConfigStore();
  const changes: KongConfig[] = [];
  store.onChange((c) => changes.push(c));
  const api = createAdminApi(store, { database, plugins: PLUGINS, version: KONG_VERSION });
  const call = (method: string, path: string, body?: unknown) => {
    const [p, q] = path.split("?");
    return api({ method, path: p as string, query: new URLSearchParams(q ?? ""), body });
  };
  return { store, changes, api, call };
}

describe("Admin API, DB-less (database = off)", () => {
  it("answers GET / with the version, the database mode and the plugins available", async () => {
    const { call } = setup("off");
    const { status, body } = await call("GET", "/");
    expect(status).toBe(200);
    expect(body).toMatchObject({
      tagline: "Welcome to kong",
      version: KONG_VERSION,
      edition: "community",
      configuration: { database: "off" },
      plugins: {
        available_on_server: {
          "key-auth": { version: KONG_VERSION, priority: 1250 },
          greeter: { version: "1.0.0", priority: 10 },
        },
        enabled_in_cluster: [],
      },
    });
  });

  it("loads a declarative config with POST /config, replaces everything and tells the listeners", async () => {
    const { call, store, changes } = setup("off");
    const yaml = SERVICE_WITH_GREETER;
    const first = await call("POST", "/config", yaml);
    expect(first.status).toBe(201);
    const serviceId = store.config.services[0]?.id as string;
    const plugin = store.config.plugins[0];
    expect(first.body).toMatchObject({
      services: { [serviceId]: { name: "svc", host: "upstream.test", port: 80, path: null } },
      plugins: {
        [plugin?.id as string]: { name: "greeter", config: { greeting: "hello", weight: 1, note: null } },
      },
    });
    expect(plugin?.config).toEqual({ greeting: "hello", weight: 1 });
    expect(changes).toHaveLength(1);

    const again = await call("POST", "/config", { config: '{"_format_version": "3.0"}' });
    expect(again.status).toBe(201);
    expect(store.config.services).toEqual([]);
    expect(changes).toHaveLength(2);
    expect((await call("GET", "/status")).body).toMatchObject({
      configuration_hash: expect.stringMatching(/^[0-9a-f]{32}$/),
    });
  });

  it("exports with GET /config as Kong does (references as bare ids), and the export loads back unchanged", async () => {
    const { call, store } = setup("off");
    const yaml = `${SERVICE_WITH_GREETER}consumers:
- username: ann
  keyauth_credentials:
  - key: k1
`;
    expect((await call("POST", "/config", yaml)).status).toBe(201);
    const before = structuredClone(store.config);
    const exported = await call("GET", "/config");
    expect(exported.status).toBe(200);
    const text = (exported.body as { config: string }).config;
    const serviceId = before.services[0]?.id as string;
    expect(text).toContain(`service: ${serviceId}`);
    expect((await call("POST", "/config", text)).status).toBe(201);
    // Loading stamps updated_at anew, as Kong's auto fields do on insert: the same second, or a later one when
    // the load crossed a second boundary. Everything else comes back as it was.
    const stamps = (config: unknown) => JSON.stringify(config).match(/"updated_at":\d+/g) ?? [];
    const unstamped = (config: unknown) =>
      JSON.parse(JSON.stringify(config).replace(/"updated_at":\d+/g, '"updated_at":0'));
    expect(unstamped(store.config)).toEqual(unstamped(before));
    const seconds = (config: unknown) => stamps(config).map((stamp) => Number(stamp.split(":")[1]));
    const was = seconds(before);
    const now = seconds(store.config);
    expect(now.length).toBe(was.length);
    for (const [i, stamp] of now.entries()) {
      expect(stamp - (was[i] ?? Number.POSITIVE_INFINITY)).toBeGreaterThanOrEqual(0);
    }
  });

  it("answers 304 to ?check_hash=1 when the same configuration is posted again", async () => {
    const { call } = setup("off");
    const body = { config: '_format_version: "3.0"\nconsumers:\n- username: bobby_tables\n' };
    expect((await call("POST", "/config?check_hash=1", body)).status).toBe(201);
    expect((await call("POST", "/config?check_hash=1", body)).status).toBe(304);
  });

  it("answers an invalid config with Kong's 400 and keeps the previous configuration", async () => {
    const { call, store, changes } = setup("off");
    const { status, body } = await call("POST", "/config", {
      _format_version: "3.0",
      plugins: [{ name: "greeter", config: { weight: 0 } }],
    });
    expect(status).toBe(400);
    expect(body).toEqual({
      code: 14,
      name: "invalid declarative configuration",
      message:
        'declarative config is invalid: {plugins={{config={weight="value should be between 1 and 65535"}}}}',
      fields: { plugins: [{ config: { weight: "value should be between 1 and 65535" } }] },
    });
    expect(changes).toEqual([]);
    expect(store.config.plugins).toEqual([]);
    expect(await call("POST", "/config", undefined)).toEqual({
      status: 400,
      body: { message: "expected a declarative configuration" },
    });
  });

  it("serves entities for reading and refuses writes with Kong's 405", async () => {
    const { call } = setup("off");
    await call("POST", "/config", {
      _format_version: "3.0",
      services: [{ name: "svc", host: "upstream.test" }],
    });
    const list = await call("GET", "/services");
    expect(list).toMatchObject({ status: 200, body: { data: [{ name: "svc" }], next: null } });
    expect((await call("GET", "/services/svc")).body).toMatchObject({ name: "svc", retries: 5 });
    expect(await call("GET", "/services/nope")).toEqual({ status: 404, body: { message: "Not found" } });
    expect(await call("POST", "/services", { host: "x.test" })).toEqual({
      status: 405,
      body: {
        code: 12,
        name: "operation unsupported",
        message: "cannot create 'services' entities when not using a database",
      },
    });
    expect((await call("PATCH", "/services/svc", { retries: 1 })).body).toMatchObject({
      message: "cannot update 'services' entities when not using a database",
    });
    expect((await call("DELETE", "/services/svc")).body).toMatchObject({
      message: "cannot remove 'services' entities when not using a database",
    });
  });

  it("describes a plugin's schema and validates a plugin entity", async () => {
    const { call } = setup("off");
    expect((await call("GET", "/schemas/plugins/greeter")).body).toEqual({
      fields: [{ config: { type: "record", required: true, fields: GREETER.configFields } }],
    });
    expect(await call("GET", "/schemas/plugins/nope")).toEqual({
      status: 404,
      body: { message: "No plugin named 'nope'" },
    });
    expect(
      await call("POST", "/schemas/plugins/validate", { name: "greeter", config: { weight: 2 } }),
    ).toEqual({
      status: 200,
      body: { message: "schema validation successful" },
    });
    expect(
      await call("POST", "/schemas/plugins/validate", { name: "greeter", config: { weight: "x", other: 1 } }),
    ).toEqual({
      status: 400,
      body: {
        code: 2,
        name: "schema violation",
        message: "2 schema violations (config.other: unknown field; config.weight: expected an integer)",
        fields: { config: { other: "unknown field", weight: "expected an integer" } },
      },
    });
    expect((await call("POST", "/schemas/plugins/validate", { name: "nope" })).body).toMatchObject({
      message:
        "schema violation (name: plugin 'nope' not enabled; add it to the 'plugins' configuration property)",
    });
  });
});

describe("Admin API with a database (database = postgres, held in memory)", () => {
  it("takes a foreign key by name as Kong does, and refuses one that names nothing", async () => {
    const { call } = setup("postgres");
    const service = await call("PUT", "/services/svc", { url: "http://upstream.test" });
    const route = await call("PUT", "/routes/r", { paths: ["/a"], service: { name: "svc" } });
    expect(route).toMatchObject({
      status: 200,
      body: { service: { id: (service.body as { id: string }).id } },
    });
    const dangling = await call("PUT", "/routes/r2", { paths: ["/b"], service: { name: "nope" } });
    expect(dangling).toMatchObject({ status: 400, body: { name: "foreign key violation" } });
  });

  it("refuses POST /config as Kong does with a database", async () => {
    const { call } = setup("postgres");
    expect(await call("POST", "/config", { _format_version: "3.0" })).toEqual({
      status: 400,
      body: { message: "this endpoint is only available when Kong is configured to not use a database" },
    });
  });

  it("creates, reads, updates and deletes services, routes and plugins, notifying on every change", async () => {
    const { call, store, changes } = setup("postgres");
    const service = await call("POST", "/services", { name: "svc", url: "https://upstream.test/v1" });
    expect(service).toMatchObject({
      status: 201,
      body: { name: "svc", protocol: "https", host: "upstream.test", port: 443, path: "/v1", tags: null },
    });
    const route = await call("POST", "/services/svc/routes", { name: "r", paths: ["/chat"] });
    expect(route).toMatchObject({
      status: 201,
      body: { service: { id: (service.body as { id: string }).id }, strip_path: true },
    });
    const plugin = await call("POST", "/routes/r/plugins", { name: "greeter", config: { greeting: "hi" } });
    expect(plugin).toMatchObject({
      status: 201,
      body: {
        name: "greeter",
        route: { id: (route.body as { id: string }).id },
        service: null,
        enabled: true,
      },
    });
    expect(store.config.plugins[0]?.config).toEqual({ greeting: "hi", weight: 1 });

    const patched = await call("PATCH", `/plugins/${(plugin.body as { id: string }).id}`, {
      config: { weight: 5 },
    });
    expect(patched).toMatchObject({
      status: 200,
      body: { config: { greeting: "hi", weight: 5, note: null } },
    });
    expect((await call("GET", "/services/svc/routes")).body).toMatchObject({ data: [{ name: "r" }] });
    expect(changes).toHaveLength(4);

    expect((await call("DELETE", "/services/svc")).body).toEqual({
      code: 4,
      name: "foreign key violation",
      message: "an existing 'routes' entity references this 'services' entity",
      fields: { "@referenced_by": "routes" },
    });
    expect((await call("DELETE", "/routes/r")).status).toBe(204);
    expect(store.config.plugins).toEqual([]); // cascaded with its route
    expect((await call("DELETE", "/services/svc")).status).toBe(204);
    expect(store.config.services).toEqual([]);
  });

  it("answers invalid entities with Kong's schema violation, duplicates with 409, dangling references with 400", async () => {
    const { call } = setup("postgres");
    expect(await call("POST", "/services", { port: 70000 })).toEqual({
      status: 400,
      body: {
        code: 2,
        name: "schema violation",
        message:
          "2 schema violations (host: required field missing; port: value should be between 0 and 65535)",
        fields: { host: "required field missing", port: "value should be between 0 and 65535" },
      },
    });
    await call("POST", "/services", { name: "svc", host: "a.test" });
    expect(await call("POST", "/services", { name: "svc", host: "b.test" })).toEqual({
      status: 409,
      body: {
        code: 5,
        name: "unique constraint violation",
        message: `UNIQUE violation detected on '{name="svc"}'`,
        fields: { name: "svc" },
      },
    });
    const id = "1c8e3b4a-6f2d-4c3e-9a1b-2d3e4f5a6b7c";
    expect(await call("POST", "/routes", { paths: ["/"], service: { id } })).toEqual({
      status: 400,
      body: {
        code: 4,
        name: "foreign key violation",
        message: `the foreign key '{id="${id}"}' does not reference an existing 'services' entity.`,
        fields: { service: { id } },
      },
    });
    expect((await call("POST", "/plugins", { name: "key-auth", consumer: { id } })).body).toMatchObject({
      fields: { consumer: "value must be null" },
    });
  });

  it("issues key-auth credentials under a consumer and generates the key when none is given", async () => {
    const { call, store } = setup("postgres");
    expect((await call("POST", "/consumers", {})).body).toMatchObject({
      message: "schema violation (at least one of these fields must be non-empty: 'custom_id', 'username')",
    });
    await call("POST", "/consumers", { username: "ann" });
    const given = await call("POST", "/consumers/ann/key-auth", { key: "secret" });
    const generated = await call("POST", "/consumers/ann/key-auth", {});
    expect(given).toMatchObject({
      status: 201,
      body: { key: "secret", consumer: { id: store.config.consumers[0]?.id } },
    });
    expect((generated.body as { key: string }).key).toMatch(/^[A-Za-z0-9]{32}$/);
    expect((await call("GET", "/consumers/ann/key-auth")).body).toMatchObject({
      data: [{ key: "secret" }, {}],
    });
    expect((await call("POST", "/consumers/ann/key-auth", { key: "secret" })).status).toBe(409);
  });
});
