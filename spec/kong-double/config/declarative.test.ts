import { describe, expect, it } from "vitest";
import { BUNDLED_PLUGINS } from "../../../kong-double/config/bundled-schemas";
import { loadedConfigSummary, parseDeclarativeConfig } from "../../../kong-double/config/declarative";
import { KongApiError, type PluginInfo } from "../../../kong-double/config/model";

/** An external plugin as the query command reports it: an array of weighted models. */
const ROUTER: PluginInfo = {
  name: "router",
  version: "0.1.0",
  priority: 10,
  phases: ["access"],
  server: "router",
  configFields: [
    {
      models: {
        type: "array",
        required: true,
        elements: {
          type: "record",
          fields: [
            { name: { type: "string", required: true } },
            { weight: { type: "integer", between: [1, 65535], default: 1 } },
          ],
        },
      },
    },
    { api_key: { type: "string", referenceable: true } },
  ],
};
const PLUGINS = new Map<string, PluginInfo>([...BUNDLED_PLUGINS, [ROUTER.name, ROUTER]]);

function rejection(input: string | object, opts = {}): Record<string, unknown> {
  try {
    parseDeclarativeConfig(input, PLUGINS, opts);
  } catch (e) {
    expect(e).toBeInstanceOf(KongApiError);
    expect((e as KongApiError).status).toBe(400);
    return (e as KongApiError).body;
  }
  throw new Error("the configuration was accepted");
}

describe("parseDeclarativeConfig", () => {
  it("loads a file with nested and top-level entities, fills Kong's defaults and resolves references", () => {
    const config = parseDeclarativeConfig(
      `
_format_version: "3.0"
_transform: true
_comment: a small gateway
services:
- name: llm
  url: https://api.example.test:8443/v1
  routes:
  - name: chat
    paths: [/chat]
  plugins:
  - name: router
    config:
      models: [{ name: gpt }, { name: llama, weight: 3 }]
- name: other
  host: other.example.test
routes:
- name: top
  service: other
  methods: [POST]
consumers:
- username: 774f8446-6427-43f9-9962-ce7ab8097fe4
  keyauth_credentials:
  - key: secret
  plugins:
  - name: request-transformer
plugins:
- name: key-auth
  route: chat
- name: router
  config:
    models: [{ name: default }]
`,
      PLUGINS,
    );
    const [llm, other] = config.services;
    expect(llm).toMatchObject({
      name: "llm",
      protocol: "https",
      host: "api.example.test",
      port: 8443,
      path: "/v1",
      retries: 5,
      connect_timeout: 60000,
      write_timeout: 60000,
      read_timeout: 60000,
      enabled: true,
    });
    expect(other).toMatchObject({ protocol: "http", host: "other.example.test", port: 80 });
    expect(other).not.toHaveProperty("path");

    const chat = config.routes.find((r) => r.name === "chat");
    expect(chat).toMatchObject({
      service: { id: llm?.id },
      paths: ["/chat"],
      protocols: ["http", "https"],
      strip_path: true,
      preserve_host: false,
      regex_priority: 0,
      path_handling: "v0",
      https_redirect_status_code: 426,
      request_buffering: true,
      response_buffering: true,
    });
    expect(config.routes.find((r) => r.name === "top")?.service).toEqual({ id: other?.id });

    // Kong's own test suite: username 774f8446-… gets id 68d5de9f-… (UUID v5 of the username)
    expect(config.consumers[0]?.id).toBe("68d5de9f-2211-5ed8-b827-22f57a492d0f");
    expect(config.keyauth_credentials).toEqual([
      expect.objectContaining({ key: "secret", consumer: { id: "68d5de9f-2211-5ed8-b827-22f57a492d0f" } }),
    ]);

    const byName = (name: string) => config.plugins.filter((p) => p.name === name);
    expect(byName("router").map((p) => [p.service?.id, p.config])).toEqual([
      [
        llm?.id,
        {
          models: [
            { name: "gpt", weight: 1 },
            { name: "llama", weight: 3 },
          ],
        },
      ],
      [undefined, { models: [{ name: "default", weight: 1 }] }],
    ]);
    expect(byName("key-auth")[0]).toMatchObject({
      route: { id: chat?.id },
      enabled: true,
      protocols: ["grpc", "grpcs", "http", "https"],
      config: {
        key_names: ["apikey"],
        hide_credentials: false,
        key_in_header: true,
        key_in_query: true,
        key_in_body: false,
        run_on_preflight: true,
      },
    });
    expect(byName("key-auth")[0]?.config).not.toHaveProperty("anonymous");
    expect(byName("request-transformer")[0]).toMatchObject({
      consumer: { id: "68d5de9f-2211-5ed8-b827-22f57a492d0f" },
      config: {
        remove: { body: [], headers: [], querystring: [] },
        add: { body: [], headers: [], querystring: [] },
        replace: { body: [], headers: [], querystring: [] },
      },
    });
  });

  it("gives the same ids when the same file is loaded again", () => {
    const file = {
      _format_version: "3.0",
      services: [{ name: "s", host: "x.test", plugins: [{ name: "key-auth" }] }],
    };
    const first = parseDeclarativeConfig(file, PLUGINS);
    const second = parseDeclarativeConfig(file, PLUGINS);
    expect(second.services[0]?.id).toBe(first.services[0]?.id);
    expect(second.plugins[0]?.id).toBe(first.plugins[0]?.id);
  });

  it("summarises a loaded config as POST /config answers: entities by type and id", () => {
    const config = parseDeclarativeConfig(
      { _format_version: "3.0", consumers: [{ username: "ann" }] },
      PLUGINS,
    );
    const id = config.consumers[0]?.id as string;
    expect(loadedConfigSummary(config)).toEqual({ consumers: { [id]: config.consumers[0] } });
  });

  it("requires _format_version", () => {
    expect(rejection({ services: [] })).toEqual({
      code: 14,
      name: "invalid declarative configuration",
      message: 'declarative config is invalid: {_format_version="required field missing"}',
      fields: { _format_version: "required field missing" },
    });
  });

  it("refuses a _format_version Kong does not know", () => {
    expect(rejection({ _format_version: "2.0" })).toMatchObject({
      message: 'declarative config is invalid: {_format_version="expected one of: 1.1, 2.1, 3.0"}',
      fields: { _format_version: "expected one of: 1.1, 2.1, 3.0" },
    });
  });

  it("refuses text that is not an object, as Kong's POST /config does", () => {
    expect(rejection("bobby tables")).toEqual({
      code: 14,
      name: "invalid declarative configuration",
      message:
        'declarative config is invalid: {error="failed parsing declarative configuration: expected an object"}',
      fields: { error: "failed parsing declarative configuration: expected an object" },
    });
  });

  it("answers a service without host and with a negative port exactly like Kong's test suite expects", () => {
    expect(rejection('_format_version: "1.1"\nservices:\n- port: -12\n')).toEqual({
      code: 14,
      name: "invalid declarative configuration",
      message:
        'declarative config is invalid: {services={{host="required field missing",port="value should be between 0 and 65535"}}}',
      fields: { services: [{ host: "required field missing", port: "value should be between 0 and 65535" }] },
    });
  });

  it("keys array element errors by position, with null before the first bad element", () => {
    const body = rejection({
      _format_version: "3.0",
      plugins: [{ name: "router", config: { models: [{ name: "a" }, { name: "b", weight: 0 }] } }],
    });
    expect(body.fields).toEqual({
      plugins: [{ config: { models: [null, { weight: "value should be between 1 and 65535" }] } }],
    });
    expect(body.message).toBe(
      'declarative config is invalid: {plugins={{config={models={[2]={weight="value should be between 1 and 65535"}}}}}}',
    );
  });

  it("names unknown fields, wrong types, missing required fields and plugins that are not enabled", () => {
    expect(
      rejection({
        _format_version: "3.0",
        extra: 1,
        services: [
          {
            name: "s",
            host: "x.test",
            retries: "many",
            plugins: [{ name: "router", config: { model: [] } }, { name: "not-installed" }],
          },
        ],
      }).fields,
    ).toEqual({
      extra: "unknown field",
      services: [
        {
          retries: "expected an integer",
          plugins: [
            { config: { model: "unknown field", models: "required field missing" } },
            { name: "plugin 'not-installed' not enabled; add it to the 'plugins' configuration property" },
          ],
        },
      ],
    });
  });

  it("applies Kong's route rules: at least one of methods, hosts, headers or paths for http", () => {
    expect(
      rejection({ _format_version: "3.0", routes: [{ name: "r", protocols: ["http"], strip_path: "yes" }] })
        .fields,
    ).toEqual({
      routes: [
        {
          strip_path: "expected a boolean",
          "@entity": ["must set one of 'methods', 'hosts', 'headers', 'paths' when 'protocols' is 'http'"],
        },
      ],
    });
  });

  it("refuses a nested entity that names its parent", () => {
    expect(
      rejection({
        _format_version: "3.0",
        services: [{ name: "s", host: "x.test", routes: [{ name: "r", paths: ["/"], service: "s" }] }],
      }).fields,
    ).toEqual({ services: [{ routes: [{ service: "value must be null" }] }] });
  });

  it("refuses duplicate names and duplicate ids with Kong's messages", () => {
    expect(
      rejection({
        _format_version: "3.0",
        services: [
          { name: "foo", host: "example.com" },
          { name: "foo", host: "example.test" },
        ],
      }),
    ).toEqual({
      code: 14,
      name: "invalid declarative configuration",
      message:
        "declarative config is invalid: {services={[2]=\"uniqueness violation: 'services' entity with name set to 'foo' already declared\"}}",
      fields: {
        services: [null, "uniqueness violation: 'services' entity with name set to 'foo' already declared"],
      },
    });
    const id = "0855b320-0dd2-547d-891d-601e9b38647f";
    expect(
      rejection({
        _format_version: "3.0",
        services: [
          { id, name: "foo", host: "example.com" },
          { id, name: "bar", host: "example.test" },
        ],
      }).fields,
    ).toEqual({
      services: [
        null,
        `uniqueness violation: 'services' entity with primary key set to '${id}' already declared`,
      ],
    });
  });

  it("refuses a second value of a unique field, keyed by the entity's name as Kong does", () => {
    expect(
      rejection({
        _format_version: "3.0",
        consumers: [
          { username: "foo", custom_id: "conflict" },
          { username: "bar", custom_id: "conflict" },
        ],
      }).fields,
    ).toEqual({
      consumers: {
        bar: "uniqueness violation: 'consumers' entity with custom_id set to 'conflict' already declared",
      },
    });
  });

  it("refuses a reference to an entity that does not exist", () => {
    expect(
      rejection({ _format_version: "3.0", routes: [{ name: "r", paths: ["/"], service: "nope" }] }).fields,
    ).toEqual({ routes: { r: ["invalid reference 'service: nope' (no such entry in 'services')"] } });
  });

  it("adds Kong 3.9's flattened_errors when asked, draining the flattened sections from fields", () => {
    const body = rejection(
      {
        _format_version: "3.0",
        extra: 1,
        services: [
          {
            name: "s",
            host: "x.test",
            tags: ["svc"],
            routes: [{ name: "r", protocols: ["http"], tags: ["route"] }],
          },
        ],
      },
      { flattenErrors: true },
    );
    expect(body.fields).toEqual({ extra: "unknown field" });
    expect(body.flattened_errors).toEqual([
      {
        entity_name: "r",
        entity_tags: ["route"],
        entity_type: "route",
        entity: { name: "r", protocols: ["http"], tags: ["route"] },
        errors: [
          {
            type: "entity",
            message: "must set one of 'methods', 'hosts', 'headers', 'paths' when 'protocols' is 'http'",
          },
        ],
      },
    ]);
  });
});
