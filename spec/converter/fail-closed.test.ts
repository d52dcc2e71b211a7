/**
 * Fail closed: when Kong's plugin server is gone, Kong proxies a request without the plugin, to the service's own
 * URL. So a converted service whose every route carries the plugin points at UNROUTED_HOST (never resolves), and
 * operations without the policy go to a `-direct` service with the endpoint's URL. The project's own apk-confs.
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { convertApkConf, UNROUTED_HOST, unroutedUrl } from "../../converter/convert";
import { KongDouble } from "../../kong-double";
import {
  hostnameType,
  UNROUTED_HOST as PLUGIN_UNROUTED_HOST,
} from "../../plugins/model-based-round-robin/core/misconfiguration";
import { type MockProvider, startMockProvider } from "../../scripts/mock-provider";
import { apkExample, HAS_APK, readApkExample, SKIPPED_WITHOUT_APK } from "../support/apk-files";

const policy = (production: string, sandbox: string, indent: string) =>
  [
    "request:",
    "  - policyName: ModelBasedRoundRobin",
    "    parameters:",
    "      onQuotaExceedSuspendDuration: 60",
    "      productionModels:",
    `        - { model: prod-a, endpoint: "${production}" }`,
    `        - { model: prod-b, endpoint: "${production}" }`,
    "      sandboxModels:",
    `        - { model: sand-a, endpoint: "${sandbox}" }`,
  ]
    .map((line) => `${indent}${line}\n`)
    .join("");

/** GET /models without a policy, POST /chat/completions with one (operation level) or both under an API-level one. */
function apkConf(level: "api" | "operation", production: string, sandbox: string): string {
  return [
    "name: llm-gateway\nbasePath: /llm\nversion: v1\n",
    `endpointConfigurations:\n  production:\n    - endpoint: "${production}"\n  sandbox:\n    - endpoint: "${sandbox}"\n`,
    level === "api" ? `apiPolicies:\n${policy(production, sandbox, "  ")}` : "",
    // Open operations: what a Kong authentication plugin does is secured.test.ts's subject.
    "operations:\n  - target: /models\n    verb: GET\n    secured: false\n  - target: /chat/completions\n    verb: POST\n    secured: false\n",
    level === "operation" ? `    operationPolicies:\n${policy(production, sandbox, "      ")}` : "",
  ].join("");
}

const convert = (text: string) => convertApkConf(text, { fileName: "llm.apk-conf" });
const PROD = "https://llm.example.test:8443/openai/v1";
const SANDBOX = "http://sandbox-llm.example.test/v1";

describe("the unrouted URL", () => {
  it("is the endpoint's scheme, port (a default one too) and path on a .invalid host name", () => {
    expect(UNROUTED_HOST).toBe("unrouted.model-based-round-robin.invalid");
    expect(unroutedUrl("https://llm.example.test:8443/openai/v1")).toBe(
      `https://${UNROUTED_HOST}:8443/openai/v1`,
    );
    expect(unroutedUrl("http://chat-backend-1:80")).toBe(`http://${UNROUTED_HOST}:80`);
    expect(unroutedUrl("https://api.openai.com/v1/")).toBe(`https://${UNROUTED_HOST}/v1`);
    expect(unroutedUrl("http://10.0.0.7:9000/v1")).toBe(`http://${UNROUTED_HOST}:9000/v1`);
    expect(unroutedUrl("https://[::1]:8443/x")).toBe(`https://${UNROUTED_HOST}:8443/x`);
    expect(unroutedUrl("http://user:secret@h.test:81/p")).toBe(`http://${UNROUTED_HOST}:81/p`);
  });
});

describe("converting an API-level policy", () => {
  const result = convert(apkConf("api", PROD, SANDBOX));
  const services = result.config.services;

  it("points both services at the unrouted host, each keeping its endpoint's scheme, port and path", () => {
    expect(services.map((s) => [s.name, s.url])).toEqual([
      ["llm-gateway", `https://${UNROUTED_HOST}:8443/openai/v1`],
      ["llm-gateway-sandbox", `http://${UNROUTED_HOST}/v1`],
    ]);
    expect(services.every((s) => s.plugins.some((p) => p.name === "model-based-round-robin"))).toBe(true);
  });

  it("keeps the route names and the upstream path relative to the service's path", () => {
    expect(services[0]?.routes.map((r) => r.name)).toEqual([
      "llm-gateway-get-models",
      "llm-gateway-post-chat-completions",
    ]);
    expect(
      services[0]?.routes[1]?.plugins.find((p) => p.name === "request-transformer")?.config,
    ).toMatchObject({
      replace: { uri: "/openai/v1/chat/completions" },
    });
    expect(
      services[1]?.routes[1]?.plugins.find((p) => p.name === "request-transformer")?.config,
    ).toMatchObject({
      replace: { uri: "/v1/chat/completions" },
    });
  });

  it("says what the unrouted URL is for, in the notes and in the YAML's header", () => {
    const note = result.notes.find((n) => n.includes(UNROUTED_HOST));
    expect(note).toMatch(/plugin server is down.*Kong's own error instead of reaching a provider unrouted/);
    const header = result.yaml.split("\n").filter((l) => l.startsWith("#"));
    expect(header.join(" ")).toContain(UNROUTED_HOST);
    expect(header.every((l) => l.length <= 115)).toBe(true);
    expect(parse(result.yaml)).toEqual(result.config);
  });
});

describe("converting operation-level policies only", () => {
  const result = convert(apkConf("operation", PROD, SANDBOX));
  const byName = Object.fromEntries(result.config.services.map((s) => [s.name, s]));

  it("sends the operations with the policy to the unrouted service and the others to a -direct service with the endpoint's URL", () => {
    expect(result.config.services.map((s) => [s.name, s.url])).toEqual([
      ["llm-gateway", `https://${UNROUTED_HOST}:8443/openai/v1`],
      ["llm-gateway-direct", PROD],
      ["llm-gateway-sandbox", `http://${UNROUTED_HOST}/v1`],
      ["llm-gateway-sandbox-direct", SANDBOX],
    ]);
    const routes = (name: string) => byName[name]?.routes.map((r) => r.name);
    expect(routes("llm-gateway")).toEqual(["llm-gateway-post-chat-completions"]);
    expect(routes("llm-gateway-direct")).toEqual(["llm-gateway-get-models"]);
    expect(routes("llm-gateway-sandbox")).toEqual(["llm-gateway-sandbox-post-chat-completions"]);
    expect(routes("llm-gateway-sandbox-direct")).toEqual(["llm-gateway-sandbox-get-models"]);
    expect(byName["llm-gateway-sandbox-direct"]?.routes[0]?.hosts).toEqual(["default.sandbox.gw.wso2.com"]);
  });

  it("puts the plugin on every route of the unrouted services and on no route of the -direct ones", () => {
    for (const service of result.config.services) {
      const carries = service.routes.map((r) => r.plugins.some((p) => p.name === "model-based-round-robin"));
      expect({ service: service.name, carries }).toEqual({
        service: service.name,
        carries: service.routes.map(() => service.url.includes(UNROUTED_HOST)),
      });
    }
  });

  it("names the -direct services in a note", () => {
    expect(result.notes.join("\n")).toMatch(
      /operations without a ModelBasedRoundRobin policy go to llm-gateway-direct \(https:\/\/llm\.example\.test:8443\/openai\/v1\), llm-gateway-sandbox-direct/,
    );
  });

  it("makes no -direct service when every operation carries the policy", () => {
    const text = apkConf("operation", PROD, SANDBOX).replace(
      "  - target: /models\n    verb: GET\n    secured: false\n",
      "",
    );
    expect(convert(text).config.services.map((s) => s.name)).toEqual(["llm-gateway", "llm-gateway-sandbox"]);
  });
});

describe("converting an API without any policy", () => {
  it("keeps the endpoints' URLs: nothing carries the plugin, Kong routes everything", () => {
    const text = `name: plain\nbasePath: /p\nversion: v1\nendpointConfigurations:\n  production:\n    - endpoint: "${PROD}"\noperations:\n  - target: /models\n    verb: GET\n`;
    const result = convert(text);
    expect(result.config.services.map((s) => [s.name, s.url])).toEqual([["plain", PROD]]);
    expect(result.notes.join("\n")).not.toContain(UNROUTED_HOST);
  });
});

describe("the README", () => {
  const readme = readFileSync("README.md", "utf8");
  const section = (title: string) => {
    const start = readme.indexOf(`## ${title}`);
    return readme.slice(start, readme.indexOf("\n## ", start + 1));
  };

  it("points the service of the Configuring it example at the unrouted host, and the example loads", async () => {
    const yaml = /```yaml\n([\s\S]*?)```/.exec(section("Configuring it"))?.[1] ?? "";
    const config = parse(yaml) as { services: { url: string }[] };
    expect(config.services.map((s) => s.url)).toEqual([`https://${UNROUTED_HOST}/v1`]);
    const kong = await KongDouble.start({
      pluginServers: [{ name: "model-based-round-robin", pluginsDirectory: resolve("dist/plugins") }],
    });
    try {
      const loaded = await kong.loadConfig(yaml);
      expect(loaded.plugins.map((p) => p.name)).toEqual(["model-based-round-robin"]);
    } finally {
      await kong.stop();
    }
  });

  it("names the unrouted host and the -direct services in the converter's documentation", () => {
    const text = readFileSync("docs/converter.md", "utf8");
    expect(text).toContain(UNROUTED_HOST);
    expect(text).toContain("<api>-direct");
  });
});

describe.skipIf(!HAS_APK)(`APK's examples as a cross-check ${SKIPPED_WITHOUT_APK}`, () => {
  it("01: both services on the unrouted host with port 80; 02: -direct services for GET /get", () => {
    const one = convert(readApkExample(apkExample("01")));
    expect(one.config.services.map((s) => s.url)).toEqual([
      `http://${UNROUTED_HOST}:80`,
      `http://${UNROUTED_HOST}:80`,
    ]);
    const two = convert(readApkExample(apkExample("02")));
    expect(two.config.services.map((s) => [s.name, s.url, s.routes.map((r) => r.methods[0])])).toEqual([
      ["chat-service-api-prod-sand", `http://${UNROUTED_HOST}:80`, ["POST"]],
      ["chat-service-api-prod-sand-direct", "http://chat-backend-1:80", ["GET"]],
      ["chat-service-api-prod-sand-sandbox", `http://${UNROUTED_HOST}:80`, ["POST"]],
      ["chat-service-api-prod-sand-sandbox-direct", "http://chat-backend-1:80", ["GET"]],
    ]);
  });
});

describe("operation-level policies converted and run through the Kong double", () => {
  let kong: KongDouble;
  let production: MockProvider;
  let sandbox: MockProvider;

  beforeAll(async () => {
    production = await startMockProvider({ name: "production-llm" });
    sandbox = await startMockProvider({ name: "sandbox-llm" });
    kong = await KongDouble.start({
      pluginServers: [{ name: "model-based-round-robin", pluginsDirectory: resolve("dist/plugins") }],
    });
    await kong.loadConfig(convert(apkConf("operation", `${production.url}/v1`, `${sandbox.url}/v1`)).yaml);
  });
  afterAll(async () => {
    await kong?.stop();
    await production?.close();
    await sandbox?.close();
  });

  const send = async (host: string, method: "GET" | "POST", path: string, body?: string) => {
    const res = await request(`${kong.proxyUrl}/llm/v1${path}`, {
      method,
      headers: { host, ...(body && { "content-type": "application/json" }) },
      body,
    });
    return { status: res.statusCode, text: await res.body.text() };
  };
  const seen = (m: MockProvider) => m.requests.map((r) => `${r.method} ${r.path}`);

  it.each([
    ["production", "default.gw.wso2.com", () => production, () => sandbox],
    ["sandbox", "default.sandbox.gw.wso2.com", () => sandbox, () => production],
  ])(
    "sends GET /models (no policy) on the %s host to that endpoint, through the -direct service",
    async (_env, host, mine, other) => {
      production.clearRequests();
      sandbox.clearRequests();
      const reply = await send(host, "GET", "/models");
      expect(reply.status).toBe(200);
      expect(seen(mine())).toEqual(["GET /v1/models"]);
      expect(seen(other())).toEqual([]);
    },
  );

  it("still sends POST /chat/completions (the policy's operation) to the chosen model, on both hosts", async () => {
    production.clearRequests();
    sandbox.clearRequests();
    const models: string[] = [];
    for (let i = 0; i < 2; i++) {
      const reply = await send("default.gw.wso2.com", "POST", "/chat/completions", '{"model":"whatever"}');
      expect(reply.status).toBe(200);
      models.push((JSON.parse(reply.text) as { model: string }).model);
    }
    expect(models.sort()).toEqual(["prod-a", "prod-b"]);
    const sand = await send("default.sandbox.gw.wso2.com", "POST", "/chat/completions", '{"model":"x"}');
    expect(JSON.parse(sand.text)).toMatchObject({ model: "sand-a" });
    expect(seen(production)).toEqual(["POST /v1/chat/completions", "POST /v1/chat/completions"]);
    expect(seen(sandbox)).toEqual(["POST /v1/chat/completions"]);
  });

  // Last: the plugin server is killed. Kong (and the double) then proxies without the plugin, to the service's URL.
  it("while the plugin server is down, a request for the policy's operation reaches no provider: Kong's own 5xx", async () => {
    production.clearRequests();
    sandbox.clearRequests();
    kong.server("model-based-round-robin").kill("SIGKILL");
    const reply = await send("default.gw.wso2.com", "POST", "/chat/completions", '{"model":"gpt-4o"}');
    expect(kong.logs.some((l) => /plugin server error in access/.test(l.message))).toBe(true);
    // Kong resolves the service's own host after the (skipped) plugin, and that name does not exist.
    expect(reply.status).toBe(503);
    expect(reply.text).toContain("name resolution failed");
    expect(reply.text).not.toContain("gpt-4o");
    expect([...seen(production), ...seen(sandbox)]).toEqual([]);
  });
});

describe("services carrying the plugin never have an IP host (Kong would not resolve an endpoint's name)", () => {
  const carries = (service: ReturnType<typeof convert>["config"]["services"][number]) =>
    service.plugins.some((p) => p.name === "model-based-round-robin") ||
    service.routes.some((r) => r.plugins.some((p) => p.name === "model-based-round-robin"));

  it("uses the plugin's own unrouted host name", () => {
    expect(UNROUTED_HOST).toBe(PLUGIN_UNROUTED_HOST);
    expect(hostnameType(UNROUTED_HOST)).toBe("name");
  });

  it.each([
    ["api", "http://10.0.0.7:9000/v1", "http://10.0.0.8/v1"],
    ["operation", "http://10.0.0.7:9000/v1", "http://10.0.0.8/v1"],
    ["api", "https://[::1]:8443/v1", "http://[fe80::1]/v1"],
    ["operation", "https://[::1]:8443/v1", PROD],
    ["api", PROD, SANDBOX],
  ] as const)("%s-level policy, endpoints %s and %s", (level, production, sandbox) => {
    const services = convert(apkConf(level, production, sandbox)).config.services;
    const carrying = services.filter(carries);
    expect(carrying.length).toBeGreaterThan(0);
    for (const service of carrying) {
      const host = new URL(service.url).hostname.replace(/^\[(.*)\]$/, "$1");
      expect({ service: service.name, type: hostnameType(host) }).toEqual({
        service: service.name,
        type: "name",
      });
    }
  });
});
