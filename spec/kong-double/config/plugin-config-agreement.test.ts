/**
 * The plugin's configuration is declared once (plugins/.../schema.ts). Kong fills its defaults before it hands a
 * configuration over; the plugin fills the same defaults itself (core/schema-derived.ts) for configurations that
 * reach it another way. Both views must agree: the config Kong's side of the double builds for StartInstance,
 * from the schema the real query command reports, normalises to exactly what the plugin makes of the bare one.
 */
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { createAdminApi } from "../../../kong-double/config/admin-api";
import { BUNDLED_PLUGINS } from "../../../kong-double/config/bundled-schemas";
import { ConfigStore } from "../../../kong-double/config/config-store";
import { parseDeclarativeConfig } from "../../../kong-double/config/declarative";
import { buildInstanceConfig } from "../../../kong-double/config/instance-config";
import type { PluginInfo } from "../../../kong-double/config/model";
import { runQueryCommand } from "../../../kong-double/config/plugin-info";
import { normalizeConfig } from "../../../plugins/model-based-round-robin/core/config";
import { Schema } from "../../../plugins/model-based-round-robin/core/schema";
import { withDefaults } from "../../../plugins/model-based-round-robin/core/schema-derived";

const repoRoot = path.resolve(__dirname, "../../..");
const NAME = "model-based-round-robin";
let info: PluginInfo;

beforeAll(async () => {
  const argv = [
    process.execPath,
    path.join(repoRoot, "dist/pluginserver/main.js"),
    "--plugins-directory",
    path.join(repoRoot, "dist/plugins"),
    "--dump-all-plugins",
  ];
  [info] = (await runQueryCommand(argv, { kongVersion: "3.9", server: NAME })) as [PluginInfo];
});

/** The Config Kong would send at StartInstance for this plugin config, as the double builds it. */
function kongConfig(config: Record<string, unknown>): Record<string, unknown> {
  const loaded = parseDeclarativeConfig(
    {
      _format_version: "3.0",
      services: [{ name: "llm", url: "http://unrouted.model-based-round-robin.invalid/v1" }],
      plugins: [{ name: NAME, service: "llm", config }],
    },
    new Map([...BUNDLED_PLUGINS, [NAME, info]]),
  );
  const plugin = loaded.plugins[0];
  if (plugin === undefined) throw new Error("the plugin was not loaded");
  return buildInstanceConfig(plugin, 1, { fields: info.configFields });
}

const BOOKKEEPING = ["__plugin_id", "__key__", "__seq__", "__ws_id", "service_id", "route_id", "consumer_id"];

describe("Kong's defaults and the plugin's own agree", () => {
  it.each([
    ["the smallest config", { production_models: [{ model: "m", endpoint: "http://e.test/v1" }] }],
    [
      "a config that sets some fields and nests records",
      {
        production_models: [
          {
            model: "a",
            endpoint: "https://a.test/v1",
            weight: 3,
            auth_header_name: "api-key",
            auth_header_value: "k",
          },
        ],
        sandbox_models: [{ model: "b", endpoint: "http://b.test" }],
        sandbox_hosts: ["sbx.test"],
        max_request_body_size: 1024,
      },
    ],
  ])("for %s", (_name, config) => {
    const filledByKong = kongConfig(config);
    const withoutBookkeeping = Object.fromEntries(
      Object.entries(filledByKong).filter(([key]) => !BOOKKEEPING.includes(key)),
    );
    expect(withDefaults(Schema, config)).toEqual(withoutBookkeeping);
    const pluginId = filledByKong.__plugin_id;
    expect(normalizeConfig(filledByKong)).toEqual(normalizeConfig({ ...config, __plugin_id: pluginId }));
  });

  it("reports to Kong exactly the fields the plugin declares", () => {
    expect(info.configFields).toEqual(JSON.parse(JSON.stringify(Schema)));
  });
});

describe("what Kong refuses when the configuration is written (Admin API, database mode)", () => {
  function post(config: Record<string, unknown>) {
    const api = createAdminApi(new ConfigStore(), {
      database: "postgres",
      plugins: new Map([...BUNDLED_PLUGINS, [NAME, info]]),
      version: "3.9.3",
    });
    return api({
      method: "POST",
      path: "/plugins",
      query: new URLSearchParams(),
      body: { name: NAME, config },
    });
  }
  const withEndpoint = (endpoint: string) => ({ production_models: [{ model: "m", endpoint }] });

  it.each([
    ["https://", "must name a host: http(s)://host[:port][/path]"],
    ["http://", "must name a host: http(s)://host[:port][/path]"],
    ["https:///v1", "must name a host: http(s)://host[:port][/path]"],
    ["https://:443/v1", "must name a host: http(s)://host[:port][/path]"],
    ["https://?x=1", "must name a host: http(s)://host[:port][/path]"],
    ["https://api.test/v1?api-version=1", "must not carry a query or fragment"],
    ["https://api.test/v1#x", "must not carry a query or fragment"],
    [
      "https://user:sk-1@api.test/v1",
      "must not carry credentials (user:password@); use auth_header_name and auth_header_value",
    ],
    ["ftp://api.test", "invalid value: ftp://api.test"],
  ])("answers 400 for the endpoint %s, naming the problem", async (endpoint, problem) => {
    const { status, body } = await post(withEndpoint(endpoint));
    expect(status).toBe(400);
    expect(body).toMatchObject({
      code: 2,
      name: "schema violation",
      fields: { config: { production_models: [{ endpoint: problem }] } },
    });
  });

  it("accepts, as Kong does, what its schema language cannot compare (the plugin answers those itself)", async () => {
    for (const config of [
      { ...withEndpoint("https://api.test/v1"), min_suspend_duration: 10, max_suspend_duration: 5 },
      {
        ...withEndpoint("https://api.test/v1"),
        unreachable_suspend_duration: 60,
        unreachable_max_suspend_duration: 30,
      },
      {
        production_models: [
          { model: "m", endpoint: "https://api.test/v1" },
          { model: "m", endpoint: "https://api.test:443/v1/" },
        ],
      },
    ]) {
      expect((await post(config)).status).toBe(201);
      expect(() => normalizeConfig(config)).toThrow(/must not exceed|same endpoint and model/);
    }
    for (const endpoint of [
      "https://api.test",
      "http://10.0.0.7:8080/v1",
      "https://[::1]:8443/v1",
      "https://api.test/v1/",
    ]) {
      expect((await post(withEndpoint(endpoint))).status).toBe(201);
    }
  });
});
