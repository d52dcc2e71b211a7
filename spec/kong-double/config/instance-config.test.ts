import { describe, expect, it } from "vitest";
import { BUNDLED_PLUGINS } from "../../../kong-double/config/bundled-schemas";
import { parseDeclarativeConfig } from "../../../kong-double/config/declarative";
import { buildInstanceConfig } from "../../../kong-double/config/instance-config";
import type { PluginInfo } from "../../../kong-double/config/model";

const SECRETIVE: PluginInfo = {
  name: "secretive",
  version: "1.0.0",
  priority: 5,
  phases: ["access"],
  configFields: [
    { api_key: { type: "string", referenceable: true, required: true } },
    { backup_keys: { type: "array", elements: { type: "string", referenceable: true }, default: [] } },
    {
      endpoints: {
        type: "array",
        default: [],
        elements: {
          type: "record",
          fields: [{ url: { type: "string" } }, { key: { type: "string", referenceable: true } }],
        },
      },
    },
    { note: { type: "string" } },
    { retries: { type: "integer", default: 2 } },
  ],
};
const PLUGINS = new Map<string, PluginInfo>([...BUNDLED_PLUGINS, [SECRETIVE.name, SECRETIVE]]);
const WS = "0dc6f45b-8f8d-40d2-a504-473544ee190b";

function load(plugin: Record<string, unknown>) {
  return parseDeclarativeConfig(
    {
      _format_version: "3.0",
      services: [{ name: "svc", host: "upstream.test", routes: [{ name: "r", paths: ["/"] }] }],
      consumers: [{ username: "ann" }],
      plugins: [plugin],
    },
    PLUGINS,
  );
}

describe("buildInstanceConfig", () => {
  it("sends the config with defaults and without unset optionals, plus Kong's bookkeeping fields", () => {
    const config = load({ name: "key-auth", route: "r" });
    const plugin = config.plugins[0];
    if (plugin === undefined) throw new Error("no plugin loaded");
    const routeId = config.routes[0]?.id;
    expect(buildInstanceConfig(plugin, 7, { fields: BUNDLED_PLUGINS.get("key-auth")?.configFields })).toEqual(
      {
        key_names: ["apikey"],
        hide_credentials: false,
        key_in_header: true,
        key_in_query: true,
        key_in_body: false,
        run_on_preflight: true,
        route_id: routeId,
        __plugin_id: plugin.id,
        __ws_id: WS,
        __key__: `plugins:key-auth:${routeId}::::${WS}`,
        __seq__: 7,
      },
    );
  });

  it("carries service, consumer and instance name when the plugin is scoped, and no __ws_id for 3.8", () => {
    const config = load({
      name: "request-transformer",
      service: "svc",
      consumer: "ann",
      instance_name: "rt-1",
    });
    const plugin = config.plugins[0];
    if (plugin === undefined) throw new Error("no plugin loaded");
    const serviceId = config.services[0]?.id;
    const consumerId = config.consumers[0]?.id;
    const cfg = buildInstanceConfig(plugin, 1, { kongVersion: "3.8" });
    expect(cfg).toMatchObject({
      service_id: serviceId,
      consumer_id: consumerId,
      plugin_instance_name: "rt-1",
      __key__: `plugins:request-transformer::${serviceId}:${consumerId}::${WS}`,
    });
    expect(cfg).not.toHaveProperty("route_id");
    expect(cfg).not.toHaveProperty("__ws_id");
  });

  it("resolves env vault references in referenceable fields, keeping the originals under $refs", () => {
    const config = load({
      name: "secretive",
      config: {
        api_key: "{vault://env/openai-key}",
        backup_keys: ["plain", "{vault://env/backup-key}"],
        endpoints: [{ url: "https://a.test", key: "{vault://env/missing-key}" }],
      },
    });
    const plugin = config.plugins[0];
    if (plugin === undefined) throw new Error("no plugin loaded");
    const warnings: string[] = [];
    const cfg = buildInstanceConfig(plugin, 3, {
      fields: SECRETIVE.configFields,
      env: { OPENAI_KEY: "sk-live", BACKUP_KEY: "sk-backup" },
      warn: (m) => warnings.push(m),
    });
    expect(cfg).toMatchObject({
      api_key: "sk-live",
      backup_keys: ["plain", "sk-backup"],
      endpoints: [{ url: "https://a.test", key: "", $refs: { key: "{vault://env/missing-key}" } }],
      retries: 2,
      $refs: { api_key: "{vault://env/openai-key}", backup_keys: [null, "{vault://env/backup-key}"] },
    });
    expect(cfg).not.toHaveProperty("note");
    expect(warnings).toEqual([
      "unable to resolve reference {vault://env/missing-key} (environment variable MISSING_KEY is not set)",
    ]);
  });

  it("accepts the earlier positional form (plugin, fields, seq, env, warn)", () => {
    const config = load({ name: "secretive", config: { api_key: "{vault://env/openai-key}" } });
    const plugin = config.plugins[0];
    if (plugin === undefined) throw new Error("no plugin loaded");
    const cfg = buildInstanceConfig(plugin, SECRETIVE.configFields, 9, { OPENAI_KEY: "k" }, () => {});
    expect(cfg).toMatchObject({ api_key: "k", __seq__: 9, $refs: { api_key: "{vault://env/openai-key}" } });
  });
});
