/**
 * APK's own scenario (../shared/apk/tests/apk-ModelBasedRoundRobin.feature) on the converted examples 01 and
 * 02: three POSTs with "model": "gpt-4.5" get answers from gpt-4o, gpt-3.5 and gpt-4.5, on the production and
 * on the sandbox host, through the Kong double with mock providers standing in for chat-backend-1 and -2.
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { convertApkConf } from "../../scripts/converter/convert";
import { KongDouble } from "../../scripts/kong-double";
import { type MockProvider, startMockProvider } from "../../scripts/mock-provider";

const EXAMPLES = resolve("../shared/apk/examples");
const cases = [
  ["01 (API-level policy)", "01-apk-test-modelroundrobin-api-level-policy-multi-endpoints.apk-conf.yaml"],
  [
    "02 (operation-level policy)",
    "02-apk-test-modelroundrobin-resource-level-policy-multi-endpoints.apk-conf.yaml",
  ],
] as const;

describe.each(cases)("example %s converted and run through the Kong double", (_, file) => {
  let kong: KongDouble;
  let backend1: MockProvider;
  let backend2: MockProvider;

  beforeAll(async () => {
    backend1 = await startMockProvider({ name: "chat-backend-1" });
    backend2 = await startMockProvider({ name: "chat-backend-2" });
    kong = await KongDouble.start({
      pluginServers: [{ name: "model-based-round-robin", pluginsDirectory: resolve("dist/plugins") }],
    });
    // The example's hosts are Kubernetes services; here the mocks stand in for them.
    const yaml = convertApkConf(readFileSync(`${EXAMPLES}/${file}`, "utf8"), { fileName: file })
      .yaml.replaceAll("http://chat-backend-1:80", backend1.url)
      .replaceAll("http://chat-backend-2:80", backend2.url);
    await kong.loadConfig(yaml);
  });
  afterAll(async () => {
    await kong?.stop();
    await backend1?.close();
    await backend2?.close();
  });

  const send = async (host: string, method: "GET" | "POST", path: string, body?: string) => {
    const res = await request(`${kong.proxyUrl}/chat-service-prod-sand/1.0${path}`, {
      method,
      headers: { host, ...(body && { "content-type": "application/json" }) },
      body,
    });
    return { status: res.statusCode, text: await res.body.text() };
  };

  it.each([
    ["production", "default.gw.wso2.com"],
    ["sandbox", "default.sandbox.gw.wso2.com"],
  ])("answers three gpt-4.5 requests from gpt-4o, gpt-3.5 and gpt-4.5 on the %s host", async (_env, host) => {
    const bodies: string[] = [];
    for (let i = 0; i < 3; i++) {
      const reply = await send(host, "POST", "/chat/completions", '{"model": "gpt-4.5", "input": "Hello"}');
      expect(reply.status).toBe(200);
      bodies.push(reply.text);
    }
    for (const model of ["gpt-4o", "gpt-3.5", "gpt-4.5"])
      expect(bodies.some((b) => b.includes(`"model":"${model}"`))).toBe(true);
  });

  it("sends the sandbox list to the sandbox endpoints and the production list to the production ones", async () => {
    backend1.clearRequests();
    backend2.clearRequests();
    for (let i = 0; i < 3; i++)
      await send("default.sandbox.gw.wso2.com", "POST", "/chat/completions", '{"model":"gpt-4.5"}');
    const models = (m: MockProvider) => m.requests.map((r) => (r.json as { model: string }).model).sort();
    expect(models(backend2)).toEqual(["gpt-4.5", "gpt-4o"]);
    expect(models(backend1)).toEqual(["gpt-3.5"]);
    expect(backend1.requests.every((r) => r.path === "/chat/completions")).toBe(true);
  });

  // 01: the plugin routes it (bodiless, to the entry the rotation picks next); 02: the -direct service.
  it("passes GET /get to the API's endpoint with the operation's path", async () => {
    backend1.clearRequests();
    await send("default.gw.wso2.com", "GET", "/get");
    expect(backend1.requests.map((r) => `${r.method} ${r.path}`)).toEqual(["GET /get"]);
  });
});

describe("--admin-url", () => {
  it("loads the converted configuration into a DB-less Kong with POST /config", async () => {
    const kong = await KongDouble.start({
      pluginServers: [{ name: "model-based-round-robin", pluginsDirectory: resolve("dist/plugins") }],
    });
    try {
      const { code, stderr } = await new Promise<{ code: number | null; stderr: string }>((done) => {
        const child = execFile(
          process.execPath,
          [
            resolve("dist/scripts/apk-conf-to-kong.js"),
            `${EXAMPLES}/${cases[0][1]}`,
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
      const cli = () =>
        new Promise<{ code: number | null; stderr: string }>((done) => {
          const child = execFile(
            process.execPath,
            [
              resolve("dist/scripts/apk-conf-to-kong.js"),
              `${EXAMPLES}/${cases[1][1]}`,
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
        "chat-service-api-prod-sand",
        "chat-service-api-prod-sand-direct",
        "chat-service-api-prod-sand-sandbox",
        "chat-service-api-prod-sand-sandbox-direct",
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
