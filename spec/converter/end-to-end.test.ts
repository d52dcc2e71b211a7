/**
 * Converted apk-confs run through the Kong double, with mock providers standing in for the endpoints: three POSTs
 * get answers from the three production models, on the production and on the sandbox host; the sandbox list goes
 * to the sandbox endpoints; GET reaches the API's endpoint. On the project's own apk-confs (spec/fixtures/apk-conf)
 * and, as a cross-check, on APK's examples 01 and 02 with APK's own scenario
 * (../shared/apk/tests/apk-ModelBasedRoundRobin.feature), skipped when ../shared/apk is absent.
 */
import { execFile } from "node:child_process";
import { resolve } from "node:path";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { convertApkConf } from "../../converter/convert";
import { KongDouble } from "../../kong-double";
import { type MockProvider, startMockProvider } from "../../scripts/mock-provider";
import {
  HAS_APK,
  ownFixturePath,
  readApkExample,
  readOwnFixture,
  SKIPPED_WITHOUT_APK,
} from "../support/apk-files";

interface Scenario {
  /** The apk-conf's text (read only when the scenario runs). */
  text: () => string;
  /** The endpoint URLs the apk-conf names; the first and second mock providers stand in for them. */
  endpoints: [string, string];
  /** /<basePath>/<version>. */
  prefix: string;
  /** The production (and sandbox) models, and the one every request asks for. */
  models: [string, string, string];
  asked: string;
  /** Which sandbox models reach the second endpoint and which the first, sorted. */
  sandbox: { second: string[]; first: string[] };
  /** A GET operation without a request body. */
  get: string;
  /**
   * A key of a consumer added to the configuration, sent in every request: the scenario's operations are secured
   * (APK's default), so the converted routes carry key-auth.
   */
  key?: string;
}

/** The scenario's tests, in the describe block that calls it. */
function throughTheDouble(scenario: Scenario): void {
  let kong: KongDouble;
  let backend1: MockProvider;
  let backend2: MockProvider;

  beforeAll(async () => {
    backend1 = await startMockProvider({ name: "backend-1" });
    backend2 = await startMockProvider({ name: "backend-2" });
    kong = await KongDouble.start({
      pluginServers: [{ name: "model-based-round-robin", pluginsDirectory: resolve("dist/plugins") }],
    });
    // The apk-conf's hosts are Kubernetes services; here the mocks stand in for them.
    const [first, second] = scenario.endpoints;
    const yaml = convertApkConf(scenario.text(), { fileName: "api.apk-conf" })
      .yaml.replaceAll(first, backend1.url)
      .replaceAll(second, backend2.url);
    const config = parse(yaml) as Record<string, unknown>;
    if (scenario.key !== undefined)
      config.consumers = [{ username: "scenario", keyauth_credentials: [{ key: scenario.key }] }];
    await kong.loadConfig(config);
  });
  afterAll(async () => {
    await kong?.stop();
    await backend1?.close();
    await backend2?.close();
  });

  const send = async (host: string, method: "GET" | "POST", path: string, body?: string) => {
    const res = await request(`${kong.proxyUrl}${scenario.prefix}${path}`, {
      method,
      headers: {
        host,
        ...(body && { "content-type": "application/json" }),
        ...(scenario.key !== undefined && { apikey: scenario.key }),
      },
      body,
    });
    return { status: res.statusCode, text: await res.body.text() };
  };
  const ask = JSON.stringify({ model: scenario.asked, input: "Hello" });

  it.each([
    ["production", "default.gw.wso2.com"],
    ["sandbox", "default.sandbox.gw.wso2.com"],
  ])("answers three requests from the three models on the %s host", async (_env, host) => {
    const bodies: string[] = [];
    for (let i = 0; i < 3; i++) {
      const reply = await send(host, "POST", "/chat/completions", ask);
      expect(reply.status).toBe(200);
      bodies.push(reply.text);
    }
    for (const model of scenario.models)
      expect(bodies.some((b) => b.includes(`"model":"${model}"`))).toBe(true);
  });

  it("sends the sandbox list to the sandbox endpoints and the production list to the production ones", async () => {
    backend1.clearRequests();
    backend2.clearRequests();
    for (let i = 0; i < 3; i++) await send("default.sandbox.gw.wso2.com", "POST", "/chat/completions", ask);
    const models = (m: MockProvider) => m.requests.map((r) => (r.json as { model: string }).model).sort();
    expect(models(backend2)).toEqual(scenario.sandbox.second);
    expect(models(backend1)).toEqual(scenario.sandbox.first);
    expect(backend1.requests.every((r) => r.path === "/chat/completions")).toBe(true);
  });

  // API-level policy: the plugin routes it (bodiless, to the entry the rotation picks next); operation-level:
  // the -direct service.
  it("passes the GET operation to the API's endpoint with the operation's path", async () => {
    backend1.clearRequests();
    await send("default.gw.wso2.com", "GET", scenario.get);
    expect(backend1.requests.map((r) => `${r.method} ${r.path}`)).toEqual([`GET ${scenario.get}`]);
  });
}

const ownScenario = (file: string): Scenario => ({
  text: () => readOwnFixture(file),
  endpoints: ["http://llm-backend-a:8080", "http://llm-backend-b:8080"],
  prefix: "/llm-gateway/v1",
  models: ["model-large", "model-medium", "model-small"],
  asked: "model-small",
  sandbox: { second: ["model-large", "model-small"], first: ["model-medium"] },
  get: "/models",
});

describe.each([
  ["an API-level policy", "api-level-policy.apk-conf.yaml"],
  ["an operation-level policy", "operation-level-policy.apk-conf.yaml"],
])("the project's apk-conf with %s converted and run through the Kong double", (_, file) => {
  throughTheDouble(ownScenario(file));
});

// The file names of APK's examples 01 and 02; their text stays in ../shared/apk.
const APK_01 = "01-apk-test-modelroundrobin-api-level-policy-multi-endpoints.apk-conf.yaml";
const APK_02 = "02-apk-test-modelroundrobin-resource-level-policy-multi-endpoints.apk-conf.yaml";

describe.skipIf(!HAS_APK)(`APK's own scenario on its examples, a cross-check ${SKIPPED_WITHOUT_APK}`, () => {
  describe.each([
    ["01 (API-level policy)", APK_01],
    ["02 (operation-level policy)", APK_02],
  ])("example %s converted and run through the Kong double", (_, file) => {
    throughTheDouble({
      text: () => readApkExample(file),
      endpoints: ["http://chat-backend-1:80", "http://chat-backend-2:80"],
      prefix: "/chat-service-prod-sand/1.0",
      models: ["gpt-4o", "gpt-3.5", "gpt-4.5"],
      asked: "gpt-4.5",
      sandbox: { second: ["gpt-4.5", "gpt-4o"], first: ["gpt-3.5"] },
      get: "/get",
      key: "scenario-key",
    });
  });
});

describe("--admin-url", () => {
  it("loads the converted configuration into a DB-less Kong with POST /config, without GET / (500 on Kong 3.9.1-3.9.3 while it manages a plugin server)", async () => {
    const kong = await KongDouble.start({
      pluginServers: [{ name: "model-based-round-robin", pluginsDirectory: resolve("dist/plugins") }],
    });
    try {
      expect((await fetch(`${kong.adminUrl}/`)).status).toBe(500);
      const { code, stderr } = await new Promise<{ code: number | null; stderr: string }>((done) => {
        const child = execFile(
          process.execPath,
          [
            resolve("dist/converter/apk-conf-to-kong.js"),
            ownFixturePath("api-level-policy.apk-conf.yaml"),
            "--admin-url",
            kong.adminUrl,
          ],
          (_e, _out, err) => done({ code: child.exitCode, stderr: err }),
        );
      });
      expect(stderr).toMatch(/loaded into DB-less Kong at .* \(POST \/config\)/);
      expect(code).toBe(0);
      // Kong's GET /config gives the loaded configuration back as YAML text.
      const exported = (await (await fetch(`${kong.adminUrl}/config`)).json()) as { config: string };
      expect((parse(exported.config) as { routes: unknown[] }).routes).toHaveLength(4);
    } finally {
      await kong.stop();
    }
  });

  it("creates the entities through the Admin API of a database-backed Kong, and a second run updates them", async () => {
    const kong = await KongDouble.start({
      pluginServers: [{ name: "model-based-round-robin", pluginsDirectory: resolve("dist/plugins") }],
      database: "postgres",
    });
    try {
      expect((await fetch(`${kong.adminUrl}/`)).status).toBe(500);
      const cli = () =>
        new Promise<{ code: number | null; stderr: string }>((done) => {
          const child = execFile(
            process.execPath,
            [
              resolve("dist/converter/apk-conf-to-kong.js"),
              ownFixturePath("operation-level-policy.apk-conf.yaml"),
              "--admin-url",
              kong.adminUrl,
            ],
            (_e, _out, err) => done({ code: child.exitCode, stderr: err }),
          );
        });
      const first = await cli();
      expect(first.stderr).toMatch(/through the entity endpoints/);
      expect(first.code).toBe(0);
      expect((await cli()).code).toBe(0);
      const list = async (entity: string) =>
        ((await (await fetch(`${kong.adminUrl}/${entity}`)).json()) as { data: { name: string }[] }).data;
      expect((await list("services")).map((s) => s.name).sort()).toEqual([
        "llm-gateway",
        "llm-gateway-direct",
        "llm-gateway-sandbox",
        "llm-gateway-sandbox-direct",
      ]);
      expect(await list("routes")).toHaveLength(4);
      const plugins = await list("plugins");
      expect(plugins.filter((p) => p.name === "model-based-round-robin")).toHaveLength(2);
      expect(plugins.filter((p) => p.name === "request-transformer")).toHaveLength(4);
    } finally {
      await kong.stop();
    }
  });
});
