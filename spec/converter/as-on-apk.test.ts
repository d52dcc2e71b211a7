/**
 * A converted API behaves as the same API on APK, or the conversion says loudly where it does not. The facts come
 * from APK's config-deployer, router and gateway (1.x); the apk-confs are the project's own (spec/fixtures/apk-conf)
 * and run through the Kong double with mock providers standing in for their endpoints.
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import schema from "../../converter/apk-conf.schema.json";
import { type ConvertOptions, convertApi, convertApkConf, render } from "../../converter/convert";
import { KongDouble } from "../../kong-double";
import { type MockProvider, startMockProvider } from "../../scripts/mock-provider";
import { readOwnFixture } from "../support/apk-files";

const convert = (text: string, options: Partial<ConvertOptions> = {}) =>
  convertApkConf(text, { fileName: "api.apk-conf", ...options });

/** A Kong double with the plugin, and mock providers named after the endpoints they stand in for. */
function useKong(names: string[]) {
  const bed = {} as { kong: KongDouble; mocks: Record<string, MockProvider> };
  beforeAll(async () => {
    bed.mocks = {};
    for (const name of names) bed.mocks[name] = await startMockProvider({ name });
    bed.kong = await KongDouble.start({
      pluginServers: [{ name: "model-based-round-robin", pluginsDirectory: resolve("dist/plugins") }],
      env: { KEYED_LLM_CREDENTIALS_BEARER: "Bearer keyed-secret" },
    });
  });
  afterAll(async () => {
    await bed.kong?.stop();
    for (const mock of Object.values(bed.mocks ?? {})) await mock.close();
  });
  /** Loads the YAML with each `http(s)://<name>:<port>` replaced by that mock's URL. */
  const load = async (yaml: string) => {
    let text = yaml;
    for (const [name, mock] of Object.entries(bed.mocks))
      text = text.replace(new RegExp(`https?://${name}(:\\d+)?`, "g"), mock.url);
    await bed.kong.loadConfig(text);
  };
  const send = async (host: string, method: string, path: string, body?: object) => {
    const res = await request(`${bed.kong.proxyUrl}${path}`, {
      method: method as "GET",
      headers: { host, ...(body && { "content-type": "application/json" }) },
      ...(body && { body: JSON.stringify(body) }),
    });
    return { status: res.statusCode, text: await res.body.text() };
  };
  /** Kong's own answer when no route matches (the mocks answer 404 too, for paths they do not serve). */
  const NO_ROUTE = "no Route matched with those values";
  const seen = (name: string) =>
    (bed.mocks[name] as MockProvider).requests.map((r) => `${r.method} ${r.path}`);
  const clear = () => {
    for (const mock of Object.values(bed.mocks)) mock.clearRequests();
  };
  return { bed, load, send, seen, clear, NO_ROUTE };
}

describe("1. endpointSecurity covers the whole endpoint", () => {
  it("sends the key with every request the plugin routes, GET /models of an API-level policy too", async () => {
    const result = convert(readOwnFixture("endpoint-security.apk-conf.yaml"));
    const config = result.config.services[0]?.plugins[0]?.config as { production_models: object[] };
    const models = config.production_models;
    expect(models.every((m) => "auth_header_value" in m)).toBe(true);
    expect(result.warnings.join("\n")).not.toMatch(/WITHOUT the API key/);
  });

  it("says loudly that an operation without the policy reaches the endpoint without the key, in stderr's warnings and in the YAML", () => {
    const result = convert(readOwnFixture("endpoint-security-operation-level.apk-conf.yaml"));
    const warning =
      'endpointConfigurations.production[0].endpointSecurity: GET /models reaches https://keyed-llm.test/v1 WITHOUT the API key (header Authorization, key "bearer" of secret "keyed-llm-credentials"): no ModelBasedRoundRobin policy routes it in production, and Kong\'s bundled plugins cannot send a vault-referenced header; add the header to route keyed-llm-get-models yourself';
    expect(result.warnings).toContain(warning);
    const header = result.yaml
      .split("\n")
      .filter((l) => l.startsWith("# "))
      .map((l) => l.slice(2))
      .join(" ");
    expect(header).toContain(`WARNING: ${warning}`);
  });

  it("says it for every operation of an API without any policy, and lists no secret nothing references", () => {
    const result = convert(readOwnFixture("apk-1.2-single-endpoint.apk-conf.yaml"));
    expect(result.warnings).toContainEqual(
      expect.stringMatching(
        /^endpointConfigurations\.production\.endpointSecurity: POST \/chat\/completions, GET \/models reach https:\/\/llm\.provider\.test\/v1 WITHOUT the API key \(header api-key, key "value" of secret "provider-key"\)/,
      ),
    );
    expect(result.secrets).toEqual([]);
  });

  describe("through the Kong double", () => {
    const { load, send, seen, clear, bed } = useKong(["keyed-llm.test"]);
    beforeAll(async () => {
      await load(convert(readOwnFixture("endpoint-security-operation-level.apk-conf.yaml")).yaml);
    });

    it("the policy's operation reaches the endpoint with the key from Kong's vault", async () => {
      clear();
      const reply = await send("default.gw.wso2.com", "POST", "/keyed/v1/chat/completions", { model: "x" });
      expect(reply.status).toBe(200);
      const mock = bed.mocks["keyed-llm.test"] as MockProvider;
      expect(mock.requests[0]?.headers.authorization).toBe("Bearer keyed-secret");
    });

    it("GET /models reaches it without, as the warning says", async () => {
      clear();
      expect((await send("default.gw.wso2.com", "GET", "/keyed/v1/models")).status).toBe(200);
      expect(seen("keyed-llm.test")).toEqual(["GET /v1/models"]);
      expect(
        (bed.mocks["keyed-llm.test"] as MockProvider).requests[0]?.headers.authorization,
      ).toBeUndefined();
    });
  });
});

describe("2. a trailing slash, as APK's router accepts it", () => {
  it("lets each route take one optional trailing slash, and sends the operation's path without it", () => {
    const routes = convert(readOwnFixture("environment-dev.apk-conf.yaml")).config.services[0]?.routes;
    expect(routes?.map((r) => r.paths[0])).toEqual([
      "~/employees/3\\.14/employee/?$",
      "~/employees/3\\.14/employee/?$",
      "~/employees/3\\.14/employee/(?<employeeId>[^/]+)/?$",
    ]);
    expect(
      routes?.map((r) => r.plugins.find((p) => p.name === "request-transformer")?.config.replace),
    ).toEqual([
      { uri: "/staff/employee" },
      { uri: "/staff/employee" },
      { uri: "/staff/employee/$(uri_captures.employeeId)" },
    ]);
  });

  it("routes a target of / as the prefix with or without its slash, and a trailing /* as the rest of the path", () => {
    const text = `name: w\nbasePath: /w\nversion: v1\nendpointConfigurations:\n  production:\n    - endpoint: http://b.test/base\noperations:\n  - target: /\n    verb: GET\n  - target: /files/*\n    verb: GET\n  - target: /*\n    verb: POST\n`;
    const routes = convert(text).config.services[0]?.routes;
    expect(
      routes?.map((r) => [
        r.paths[0],
        r.plugins.find((p) => p.name === "request-transformer")?.config.replace,
      ]),
    ).toEqual([
      ["~/w/v1/?$", { uri: "/base/" }],
      ["~/w/v1/files(?<apk_wildcard>.*)$", { uri: "/base/files$(uri_captures.apk_wildcard)" }],
      ["~/w/v1(?<apk_wildcard>.*)$", { uri: "/base$(uri_captures.apk_wildcard)" }],
    ]);
  });

  describe("through the Kong double", () => {
    const { load, send, seen, clear, NO_ROUTE } = useKong(["employees-dev-backend", "b.test"]);
    beforeAll(async () => {
      const files = `name: w\nbasePath: /files-api\nversion: v1\nendpointConfigurations:\n  production:\n    - endpoint: http://b.test/store\noperations:\n  - target: /files/*\n    verb: GET\n    secured: false\n`;
      await load(
        render([
          convertApi(readOwnFixture("environment-dev.apk-conf.yaml"), { fileName: "dev.apk-conf" }),
          convertApi(files, { fileName: "files.apk-conf" }),
        ]).yaml,
      );
    });

    it("routes GET .../employee/ as APK's MultiEnvironment scenario expects, to /staff/employee", async () => {
      clear();
      for (const path of ["/employees/3.14/employee/", "/employees/3.14/employee"]) {
        expect((await send("default-dev.gw.wso2.com", "GET", path)).text).not.toContain(NO_ROUTE);
      }
      await send("default-dev.gw.wso2.com", "PUT", "/employees/3.14/employee/7/", {});
      expect(seen("employees-dev-backend")).toEqual([
        "GET /staff/employee",
        "GET /staff/employee",
        "PUT /staff/employee/7",
      ]);
    });

    it("does not take a longer path", async () => {
      for (const path of ["/employees/3.14/employees", "/employees/3.14/employee/x"]) {
        expect((await send("default-dev.gw.wso2.com", "GET", path)).text).toContain(NO_ROUTE);
      }
    });

    it("sends the rest of the path of a /* target", async () => {
      clear();
      await send("any.test", "GET", "/files-api/v1/files/a/b.txt");
      expect(seen("b.test")).toEqual(["GET /store/files/a/b.txt"]);
    });

    it("sends / for the bare prefix of a /* target on an endpoint without a path, and the rest after it", async () => {
      const root = `name: r\nbasePath: /root-api\nversion: v1\nendpointConfigurations:\n  production:\n    - endpoint: http://b.test\noperations:\n  - target: /*\n    verb: GET\n    secured: false\n`;
      await load(render([convertApi(root, { fileName: "root.apk-conf" })]).yaml);
      clear();
      for (const path of ["/root-api/v1", "/root-api/v1/", "/root-api/v1/a/b"]) {
        expect((await send("any.test", "GET", path)).text).not.toContain(NO_ROUTE);
      }
      expect(seen("b.test")).toEqual(["GET /", "GET /", "GET /a/b"]);
    });
  });
});

describe("3. environment: an API of environment dev is on APK's host for dev", () => {
  const dev = convert(readOwnFixture("environment-dev.apk-conf.yaml"));

  it("restricts the routes to default-dev.gw.wso2.com, and the sandbox host to default-dev.sandbox.gw.wso2.com", () => {
    expect(dev.config.services[0]?.routes.every((r) => r.hosts?.join() === "default-dev.gw.wso2.com")).toBe(
      true,
    );
    expect(dev.notes).toContain(
      "environment dev: routed on host default-dev.gw.wso2.com (production) and default-dev.sandbox.gw.wso2.com (sandbox), as APK names them for organization default",
    );
    const withPolicy = convert(
      readOwnFixture("api-level-policy.apk-conf.yaml").replace("type: REST", "type: REST\nenvironment: dev"),
    );
    expect(withPolicy.config.services[1]?.routes[0]?.hosts).toEqual(["default-dev.sandbox.gw.wso2.com"]);
    expect(withPolicy.config.services[0]?.plugins[0]?.config.sandbox_hosts).toEqual([
      "default-dev.sandbox.gw.wso2.com",
    ]);
  });

  it("takes the hosts of an environment from the options", () => {
    const own = convert(readOwnFixture("environment-dev.apk-conf.yaml"), {
      environmentHosts: { dev: { production: "dev.api.example.test" } },
    });
    expect(own.config.services[0]?.routes[0]?.hosts).toEqual(["dev.api.example.test"]);
    expect(own.notes).toContain(
      "environment dev: routed on host dev.api.example.test (production) and default-dev.sandbox.gw.wso2.com (sandbox)",
    );
  });

  it("refuses an environment that cannot be part of a host name", () => {
    expect(() =>
      convert(
        readOwnFixture("environment-dev.apk-conf.yaml").replace("environment: dev", "environment: my dev"),
      ),
    ).toThrow(
      'api.apk-conf: environment: "my dev" makes the host "default-my dev.gw.wso2.com", which is not a host name; choose one with --env-host my dev=HOST',
    );
  });

  describe("through the Kong double: the dev and qa variants of one API, in one configuration", () => {
    const { load, send, seen, clear, NO_ROUTE } = useKong(["employees-dev-backend", "employees-qa-backend"]);
    beforeAll(async () => {
      await load(
        render([
          convertApi(readOwnFixture("environment-dev.apk-conf.yaml"), { fileName: "dev" }),
          convertApi(readOwnFixture("environment-qa.apk-conf.yaml"), { fileName: "qa" }),
        ]).yaml,
      );
    });

    it("sends each host's requests to its environment's backend", async () => {
      clear();
      await send("default-dev.gw.wso2.com", "GET", "/employees/3.14/employee");
      await send("default-qa.gw.wso2.com", "POST", "/employees/3.14/employee", {});
      expect(seen("employees-dev-backend")).toEqual(["GET /staff/employee"]);
      expect(seen("employees-qa-backend")).toEqual(["POST /staff/employee"]);
    });

    it("answers Kong's 404 on another host, as APK has no route there", async () => {
      const reply = await send("default.gw.wso2.com", "GET", "/employees/3.14/employee");
      expect([reply.status, reply.text]).toEqual([404, expect.stringContaining(NO_ROUTE)]);
    });
  });
});

describe("4. a basePath that already ends in the version", () => {
  const api = (basePath: string, version: string) =>
    `name: a\nbasePath: ${basePath}\nversion: "${version}"\nendpointConfigurations:\n  production:\n    - endpoint: http://b.test\noperations:\n  - target: /x\n    verb: GET\n`;

  it.each([
    ["/api1/1.0.0", "1.0.0", "~/api1/1\\.0\\.0/x/?$"],
    ["/api1/1.0.0/", "1.0.0", "~/api1/1\\.0\\.0/x/?$"],
    ["/api1", "1.0.0", "~/api1/1\\.0\\.0/x/?$"],
    ["/api-v2", "v2", "~/api-v2/x/?$"],
  ])(
    "routes basePath %s of version %s under what APK's returnFullBasePath makes",
    (basePath, version, path) => {
      expect(convert(api(basePath, version)).config.services[0]?.routes[0]?.paths).toEqual([path]);
    },
  );

  it("says when it did not append the version", () => {
    expect(convert(api("/api1/1.0.0", "1.0.0")).notes).toContain(
      "basePath /api1/1.0.0 already ends in version 1.0.0: routed under /api1/1.0.0, as APK does (it appends the version only to a basePath that does not end in it)",
    );
    expect(convert(api("/api1", "1.0.0")).notes.join("\n")).not.toContain("already ends");
  });
});

describe("5. APK 1.2's form of endpointConfigurations: one endpoint configuration per environment", () => {
  const result = convert(readOwnFixture("apk-1.2-single-endpoint.apk-conf.yaml"));
  const byName = Object.fromEntries(result.config.services.map((s) => [s.name, s]));

  it("reads it as the list of one that APK 1.3 writes: a production and a sandbox service", () => {
    expect(result.config.services.map((s) => [s.name, s.url])).toEqual([
      ["assistant-1-2", "https://llm.provider.test/v1"],
      ["assistant-1-2-sandbox", "http://sandbox-llm.test:8080/v1"],
    ]);
    expect(byName["assistant-1-2-sandbox"]?.routes[0]?.hosts).toEqual(["default.sandbox.gw.wso2.com"]);
  });

  it("names its fields as the file has them, without a list index", () => {
    expect(result.warnings).toContain("endpointConfigurations.production.aiRatelimit: not converted");
    expect(result.warnings.join("\n")).not.toContain("production[0]");
  });

  it("reads the operation-level single form too, and says it is not converted", () => {
    expect(result.warnings).toContain(
      "operations[1] GET /models: operation-level endpointConfigurations not converted",
    );
  });

  it("says which forms it takes when the value is neither", () => {
    expect(() =>
      convert("name: a\nbasePath: /a\nversion: v1\nendpointConfigurations:\n  production: http://b.test\n"),
    ).toThrow(
      "api.apk-conf:5: endpointConfigurations.production: must be a list of endpoint configurations, or one (APK 1.2's form)",
    );
  });
});

describe("7. a sandbox endpoint whose policy has no sandbox models", () => {
  const result = convert(readOwnFixture("sandbox-without-models.apk-conf.yaml"));

  it("sends sandbox requests to the sandbox endpoint as they came, as APK's gateway does, and says so", () => {
    expect(result.config.services.map((s) => [s.name, s.url, s.plugins.length])).toEqual([
      ["chat-sandboxed", "http://unrouted.model-based-round-robin.invalid:8080/v1", 1],
      ["chat-sandboxed-sandbox", "http://chat-sandbox:8080/v1", 0],
    ]);
    expect(result.notes).toContain(
      "sandbox: the ModelBasedRoundRobin policy has no sandboxModels, so sandbox requests go to the sandbox endpoint http://chat-sandbox:8080/v1 with the client's model, as on APK (its gateway keeps the request's model when it has none to choose)",
    );
    expect(parse(result.yaml)).toEqual(result.config);
  });

  it("with operation-level policies, sends to the plugin in sandbox only the operations whose policy has sandbox models", () => {
    const policy = (sandbox: boolean) =>
      `    operationPolicies:\n      request:\n        - policyName: ModelBasedRoundRobin\n          parameters:\n            onQuotaExceedSuspendDuration: 5\n            productionModels: [{ model: p, endpoint: "http://prod.test/v1" }]\n${sandbox ? '            sandboxModels: [{ model: s, endpoint: "http://sbx.test/v1" }]\n' : ""}`;
    const text = `name: ops\nbasePath: /ops\nversion: v1\nendpointConfigurations:\n  production:\n    - endpoint: http://prod.test/v1\n  sandbox:\n    - endpoint: http://sbx.test/v1\noperations:\n  - target: /chat/completions\n    verb: POST\n${policy(true)}  - target: /embeddings\n    verb: POST\n${policy(false)}  - target: /models\n    verb: GET\n`;
    const ops = convert(text);
    const routes = (name: string) =>
      ops.config.services.find((s) => s.name === name)?.routes.map((r) => `${r.methods[0]} ${r.name}`);
    expect(routes("ops-sandbox")).toEqual(["POST ops-sandbox-post-chat-completions"]);
    expect(routes("ops-sandbox-direct")).toEqual([
      "POST ops-sandbox-post-embeddings",
      "GET ops-sandbox-get-models",
    ]);
    expect(routes("ops")).toEqual(["POST ops-post-chat-completions", "POST ops-post-embeddings"]);
    expect(ops.notes.filter((n) => n.startsWith("sandbox:"))).toEqual([
      "sandbox: POST /embeddings: their policy has no sandboxModels, so sandbox requests for them go to the sandbox endpoint http://sbx.test/v1 with the client's model, as on APK (its gateway keeps the request's model when it has none to choose)",
    ]);
    const withSandboxModels = convert(readOwnFixture("operation-level-policy.apk-conf.yaml"));
    expect(withSandboxModels.notes.filter((n) => n.startsWith("sandbox:"))).toEqual([]);
  });

  describe("through the Kong double", () => {
    const { load, send, seen, clear } = useKong(["chat-production", "chat-sandbox"]);
    beforeAll(async () => {
      await load(result.yaml);
    });

    it("answers a sandbox chat request from the sandbox endpoint with the client's model, not a 404", async () => {
      clear();
      const reply = await send("default.sandbox.gw.wso2.com", "POST", "/chat/v1/chat/completions", {
        model: "mine",
      });
      expect(reply.status).toBe(200);
      expect(JSON.parse(reply.text)).toMatchObject({ model: "mine" });
      expect(seen("chat-sandbox")).toEqual(["POST /v1/chat/completions"]);
      expect(seen("chat-production")).toEqual([]);
    });

    it("still rotates the production models on the production host", async () => {
      const models: string[] = [];
      for (let i = 0; i < 2; i++) {
        const reply = await send("default.gw.wso2.com", "POST", "/chat/v1/chat/completions", { model: "x" });
        models.push((JSON.parse(reply.text) as { model: string }).model);
      }
      expect(models.sort()).toEqual(["large", "small"]);
    });
  });
});

describe("other apk-confs APK deploys", () => {
  it("converts an API with a sandbox endpoint only: its routes on the sandbox host, none on production", () => {
    const text = `name: s\nbasePath: /s\nversion: v1\nendpointConfigurations:\n  sandbox:\n    - endpoint: http://sandbox.test/any\noperations:\n  - target: /employee\n    verb: GET\n`;
    const result = convert(text);
    expect(result.config.services.map((s) => [s.name, s.url, s.routes[0]?.hosts])).toEqual([
      ["s-sandbox", "http://sandbox.test/any", ["default.sandbox.gw.wso2.com"]],
    ]);
    expect(result.notes).toContain(
      "no production endpoint: only the sandbox host is routed, as on APK, which makes no production route then",
    );
  });

  it("takes an endpoint weight of 0, which APK's weighted routing allows, and says weights are not converted", () => {
    const text = `name: w\nbasePath: /w\nversion: v1\nendpointConfigurations:\n  production:\n    - endpoint: http://a.test\n      weight: 100\n    - endpoint: http://b.test\n      weight: 0\n`;
    expect(convert(text).warnings).toContain(
      "endpointConfigurations.production[1].weight: not converted (endpoint weights; the plugin weighs models)",
    );
  });

  it("says why an API with operation-level endpoints only cannot be converted", () => {
    const text = `name: o\nbasePath: /o\nversion: v1\noperations:\n  - target: /x\n    verb: GET\n    endpointConfigurations:\n      production:\n        - endpoint: http://x.test\n`;
    expect(() => convert(text)).toThrow(
      "api.apk-conf: endpointConfigurations: has no production or sandbox endpoint and no policy names a model endpoint: there is nowhere to send requests (operation-level endpointConfigurations are not converted)",
    );
  });
});

describe("the converter's documentation (docs/converter.md) and the README's pointer to it", () => {
  const doc = readFileSync("docs/converter.md", "utf8");
  const start = doc.indexOf("## Table: what each apk-conf feature becomes");
  const end = doc.indexOf("\n## ", start + 1);
  const section = doc.slice(start, end === -1 ? undefined : end).trim();
  const table = section.slice(section.indexOf("| apk-conf |"));

  it("is linked from the README's From APK section", () => {
    const readme = readFileSync("README.md", "utf8");
    const from = readme.indexOf("## From APK: apk-conf-to-kong");
    expect(readme.slice(from, readme.indexOf("\n## ", from + 1))).toContain(
      "[docs/converter.md](docs/converter.md)",
    );
  });

  it("documents every flag of the command's usage", async () => {
    const { stdout } = await new Promise<{ stdout: string }>((done) =>
      execFile(process.execPath, [resolve("dist/converter/apk-conf-to-kong.js"), "--help"], (_e, out) =>
        done({ stdout: out }),
      ),
    );
    const flags = [...new Set(stdout.match(/--[a-z-]+/g) ?? [])];
    expect(flags.length).toBeGreaterThanOrEqual(8);
    for (const flag of flags)
      expect({ flag, documented: doc.includes(`\`${flag}`) }).toEqual({ flag, documented: true });
  });
  const firstColumn = table
    .split("\n")
    .map((row) => row.split("|")[1] ?? "")
    .join("\n");

  it("ends with the table of what each apk-conf feature becomes", () => {
    expect(table.split("\n").every((row) => /^\|.*\|$/.test(row))).toBe(true);
    expect(table.split("\n").length).toBeGreaterThan(15);
  });

  it("has a row for every field the converter's schema knows, and for APK's other API types", () => {
    const defs = schema.definitions as unknown as Record<string, { properties?: object }>;
    const fields = [
      ...Object.keys(schema.properties),
      ...Object.keys(defs.endpointConfiguration?.properties ?? {}),
      ...Object.keys(defs.operation?.properties ?? {}),
      "sandboxModels",
    ].filter((f) => !["endpoint", "operationPolicies", "apiPolicies", "operations"].includes(f));
    for (const field of [...new Set(fields)])
      expect({ field, inTable: new RegExp(`\`[^\`]*\\b${field}\\b[^\`]*\``).test(firstColumn) }).toEqual({
        field,
        inTable: true,
      });
    for (const type of ["GRAPHQL", "GRPC", "WS", "SSE", "WEBSUB"]) expect(firstColumn).toContain(type);
  });

  it("quotes the refusals as the converter words them", () => {
    expect(table).toContain(
      "type: GRAPHQL is a GraphQL API, which apk-conf-to-kong does not convert: it converts REST APIs only (Kong routes them by HTTP method and path)",
    );
    expect(table).toContain("prodModels: is not a known apk-conf field; did you mean productionModels?");
    expect(table).toContain(
      'version: must be string (got 1); YAML reads 1.0 as a number: write it in quotes, version: "1.0"',
    );
    expect(table).toContain(
      'endpointConfigurations.production[0].endpoint: has the placeholder host "{endpoint}" (got …): APK fills such placeholders in when it deploys; write the real host name',
    );
  });
});
