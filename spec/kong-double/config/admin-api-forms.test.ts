/**
 * The double's Admin API over HTTP with the bodies Kong's own docs send with curl: form-encoded (`--data`) and
 * multipart (`-F`), decoded as Kong 3.9.3 decodes them (kong/api/arguments.lua for entity endpoints, Lapis
 * params + api_helpers.lua normalize_nested_params for /config and /schemas/plugins/validate); missing entities
 * (404 on GET/PATCH, 204 on DELETE, even DB-less); GET /plugins/enabled.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KongDouble } from "../../../kong-double";
import { PLUGIN_DIR, PLUGIN_NAME } from "../../support/harness";

const form = (fields: [string, string][]) => new URLSearchParams(fields).toString();

async function call(
  base: string,
  method: string,
  path: string,
  body?: { form: [string, string][] } | { multipart: FormData } | { json: unknown },
) {
  const init: RequestInit = { method };
  if (body && "form" in body) {
    init.headers = { "content-type": "application/x-www-form-urlencoded" };
    init.body = form(body.form);
  } else if (body && "multipart" in body) init.body = body.multipart;
  else if (body && "json" in body) {
    init.headers = { "content-type": "application/json" };
    init.body = JSON.stringify(body.json);
  }
  const res = await fetch(`${base}${path}`, init);
  const text = await res.text();
  // biome-ignore lint/suspicious/noExplicitAny: tests read Kong's JSON bodies by path
  return { status: res.status, body: (text === "" ? undefined : JSON.parse(text)) as any };
}

const CURL_FORM: [string, string][] = [
  ["name", PLUGIN_NAME],
  ["config.production_models[1].model", "gpt-4o"],
  ["config.production_models[1].endpoint", "http://a.example.test/v1"],
  ["config.production_models[1].weight", "5"],
  ["config.production_models[2].model", "gpt-4o-mini"],
  ["config.production_models[2].endpoint", "http://b.example.test/v1"],
  ["config.on_quota_exceed_suspend_duration", "30"],
];
const JSON_BODY = {
  name: PLUGIN_NAME,
  config: {
    production_models: [
      { model: "gpt-4o", endpoint: "http://a.example.test/v1", weight: 5 },
      { model: "gpt-4o-mini", endpoint: "http://b.example.test/v1" },
    ],
    on_quota_exceed_suspend_duration: 30,
  },
};

describe("Admin API form bodies, database mode", () => {
  let kong: KongDouble;
  beforeAll(async () => {
    kong = await KongDouble.start({
      database: "postgres",
      pluginServers: [{ name: PLUGIN_NAME, pluginsDirectory: PLUGIN_DIR }],
    });
  });
  afterAll(async () => kong?.stop());
  const api = (...args: [string, string, Parameters<typeof call>[3]?]) => call(kong.adminUrl, ...args);

  it("creates the plugin from curl --data with dotted keys and [n] indexes, typed by the schema, as the JSON form does", async () => {
    const svc = await api("POST", "/services", {
      form: [
        ["name", "llm"],
        ["url", "http://llm.example.test"],
        ["retries", "2"],
      ],
    });
    expect(svc.status).toBe(201);
    expect(svc.body).toMatchObject({ name: "llm", host: "llm.example.test", retries: 2 });

    const fromForm = await api("POST", "/services/llm/plugins", { form: CURL_FORM });
    expect(fromForm.status).toBe(201);
    const formConfig = (await api("GET", `/plugins/${fromForm.body.id}`)).body.config;
    expect(await api("DELETE", `/plugins/${fromForm.body.id}`)).toMatchObject({ status: 204 });

    const fromJson = await api("POST", "/services/llm/plugins", { json: JSON_BODY });
    expect(fromJson.status).toBe(201);
    const jsonConfig = (await api("GET", `/plugins/${fromJson.body.id}`)).body.config;
    expect(formConfig).toEqual(jsonConfig);
    expect(fromForm.body.config).toEqual(fromJson.body.config);
    expect(formConfig).toMatchObject({
      production_models: [
        { model: "gpt-4o", endpoint: "http://a.example.test/v1", weight: 5 },
        { model: "gpt-4o-mini", endpoint: "http://b.example.test/v1", weight: 1 },
      ],
      on_quota_exceed_suspend_duration: 30,
    });
    expect(await api("DELETE", `/plugins/${fromJson.body.id}`)).toMatchObject({ status: 204 });
  });

  it("takes the bracket form x[1][model], multipart -F fields, and PATCH typing by the stored plugin's name", async () => {
    const brackets = await api("POST", "/plugins", {
      form: [
        ["name", PLUGIN_NAME],
        ["config[production_models][1][model]", "m"],
        ["config[production_models][1][endpoint]", "http://a.example.test"],
        ["config[production_models][1][weight]", "3"],
      ],
    });
    expect(brackets.status).toBe(201);
    expect(brackets.body.config.production_models).toMatchObject([
      { model: "m", endpoint: "http://a.example.test", weight: 3 },
    ]);

    const patched = await api("PATCH", `/plugins/${brackets.body.id}`, {
      form: [["config.on_quota_exceed_suspend_duration", "0"]],
    });
    expect(patched.status).toBe(200);
    expect(patched.body.config).toMatchObject({
      on_quota_exceed_suspend_duration: 0,
      production_models: [{ model: "m", weight: 3 }],
    });
    expect(await api("DELETE", `/plugins/${brackets.body.id}`)).toMatchObject({ status: 204 });

    const multipart = new FormData();
    for (const [k, v] of CURL_FORM) multipart.append(k, v);
    const fromMultipart = await api("POST", "/plugins", { multipart });
    expect(fromMultipart.status).toBe(201);
    expect(fromMultipart.body.config.production_models).toMatchObject(
      JSON_BODY.config.production_models.map((m) => ({ weight: 1, ...m })),
    );
    expect(await api("DELETE", `/plugins/${fromMultipart.body.id}`)).toMatchObject({ status: 204 });
  });

  it("decodes x[] and repeated keys into arrays, '' into null, true/false into booleans", async () => {
    const route = await api("POST", "/routes", {
      form: [
        ["name", "r"],
        ["paths[]", "/a"],
        ["paths[]", "/b"],
        ["methods", "GET"],
        ["methods", "POST"],
        ["strip_path", "false"],
        ["hosts", ""],
      ],
    });
    expect(route.status).toBe(201);
    expect(route.body).toMatchObject({
      paths: ["/a", "/b"],
      methods: ["GET", "POST"],
      strip_path: false,
      hosts: null,
    });
    expect(await api("DELETE", "/routes/r")).toMatchObject({ status: 204 });

    // multipart goes through Lapis's params_post, which keeps the last part of a repeated name
    const multipart = new FormData();
    multipart.append("name", "m");
    multipart.append("paths[]", "/a");
    multipart.append("paths[]", "/b");
    const fromMultipart = await api("POST", "/routes", { multipart });
    expect(fromMultipart.status).toBe(201);
    expect(fromMultipart.body.paths).toEqual(["/b"]);
    expect(await api("DELETE", "/routes/m")).toMatchObject({ status: 204 });
  });

  it("answers /schemas/plugins/validate's form as Kong does: [1][model] validates, [1].model is 'expected a record'", async () => {
    const good = await api("POST", "/schemas/plugins/validate", {
      form: [
        ["name", PLUGIN_NAME],
        ["config.production_models[1][model]", "m"],
        ["config.production_models[1][endpoint]", "http://a.example.test"],
      ],
    });
    expect(good).toEqual({ status: 200, body: { message: "schema validation successful" } });
    // Lapis's add_params nests only name[...] brackets and drops what follows the last ']':
    // {"config.production_models": {"1": "<last value>"}} → production_models = {"<string>"}.
    const dotted = await api("POST", "/schemas/plugins/validate", {
      form: [
        ["name", PLUGIN_NAME],
        ["config.production_models[1].model", "m"],
        ["config.production_models[1].endpoint", "http://a.example.test"],
      ],
    });
    expect(dotted.status).toBe(400);
    expect(dotted.body).toMatchObject({
      code: 2,
      name: "schema violation",
      fields: { config: { production_models: ["expected a record"] } },
    });
  });

  it("answers a missing entity 404 on GET and PATCH and 204 on DELETE", async () => {
    expect(await api("GET", "/services/nope")).toEqual({ status: 404, body: { message: "Not found" } });
    expect(await api("PATCH", "/services/nope", { json: { retries: 1 } })).toEqual({
      status: 404,
      body: { message: "Not found" },
    });
    expect(await api("DELETE", "/services/nope")).toEqual({ status: 204, body: undefined });
  });
});

describe("Admin API form bodies, DB-less", () => {
  let kong: KongDouble;
  beforeAll(async () => {
    kong = await KongDouble.start({ pluginServers: [{ name: PLUGIN_NAME, pluginsDirectory: PLUGIN_DIR }] });
  });
  afterAll(async () => kong?.stop());
  const api = (...args: [string, string, Parameters<typeof call>[3]?]) => call(kong.adminUrl, ...args);
  const YAML = `_format_version: "3.0"
services:
- name: llm
  url: http://llm.example.test
  plugins:
  - name: ${PLUGIN_NAME}
    config:
      production_models:
      - model: gpt-4o
        endpoint: http://a.example.test/v1
`;

  it("loads POST /config -F config=@kong.yml (a file part) and --data-urlencode config=<json>", async () => {
    const multipart = new FormData();
    multipart.append("config", new Blob([YAML], { type: "application/octet-stream" }), "kong.yml");
    const loaded = await api("POST", "/config", { multipart });
    expect(loaded.status).toBe(201);
    const plugins = (await api("GET", "/plugins")).body.data;
    expect(plugins).toHaveLength(1);
    expect(plugins[0].config).toMatchObject({
      production_models: [{ model: "gpt-4o", endpoint: "http://a.example.test/v1", weight: 1 }],
    });

    const json = JSON.stringify({ _format_version: "3.0", consumers: [{ username: "bobby" }] });
    const again = await api("POST", "/config", { form: [["config", json]] });
    expect(again.status).toBe(201);
    expect((await api("GET", "/consumers")).body.data).toMatchObject([{ username: "bobby" }]);
    expect((await api("GET", "/plugins")).body.data).toEqual([]);
  });

  it("answers a missing entity 404 on GET and PATCH and 204 on DELETE, an existing one 405", async () => {
    await api("POST", "/config", { form: [["config", YAML]] });
    expect(await api("GET", "/plugins/00000000-0000-4000-8000-000000000000")).toEqual({
      status: 404,
      body: { message: "Not found" },
    });
    expect(await api("PATCH", "/services/nope", { form: [["retries", "1"]] })).toEqual({
      status: 404,
      body: { message: "Not found" },
    });
    expect(await api("DELETE", "/services/nope")).toEqual({ status: 204, body: undefined });
    expect(await api("DELETE", "/services/llm")).toMatchObject({
      status: 405,
      body: { message: "cannot remove 'services' entities when not using a database" },
    });
  });

  it("lists the plugins this node loaded at GET /plugins/enabled", async () => {
    const { status, body } = await api("GET", "/plugins/enabled");
    expect(status).toBe(200);
    expect(body.enabled_plugins).toEqual(expect.arrayContaining([PLUGIN_NAME, "key-auth"]));
  });
});
