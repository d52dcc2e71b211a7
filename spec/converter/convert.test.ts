import { readdirSync } from "node:fs";
import Ajv from "ajv";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import ownSchema from "../../converter/apk-conf.schema.json";
import { convertApkConf } from "../../converter/convert";
import { ConversionError } from "../../converter/errors";
import {
  apkExamples,
  HAS_APK,
  OWN_FIXTURES,
  readApkExample,
  readApkFile,
  readOwnFixture,
  SKIPPED_WITHOUT_APK,
} from "../support/apk-files";

const isCustomResource = (name: string) => /CRs|APIPolicy/.test(name);
/** The project's fixtures of what the converter refuses (refusals.test.ts says how). */
const isRefused = (name: string) => name.startsWith("refused-");
const fixtures = readdirSync(OWN_FIXTURES)
  .filter((f) => f.endsWith(".yaml") && !isRefused(f))
  .sort();

function convert(text: string, fileName = "api.apk-conf") {
  return convertApkConf(text, { fileName });
}

function failure(text: string, fileName = "api.apk-conf"): string {
  try {
    convert(text, fileName);
  } catch (error) {
    expect(error).toBeInstanceOf(ConversionError);
    return (error as Error).message;
  }
  throw new Error("expected the conversion to fail");
}

describe("the project's own apk-confs (spec/fixtures/apk-conf)", () => {
  it.each(fixtures.filter((f) => !isCustomResource(f)))(
    "converts %s, the YAML being the configuration",
    (name) => {
      const result = convert(readOwnFixture(name), name);
      expect(result.config._format_version).toBe("3.0");
      expect(result.config.services.length).toBeGreaterThan(0);
      expect(parse(result.yaml)).toEqual(result.config);
      expect(new Ajv({ strict: false }).compile(ownSchema)(parse(readOwnFixture(name)))).toBe(true);
    },
  );

  it.each(fixtures.filter(isCustomResource))(
    "refuses the Kubernetes custom resource %s, naming it",
    (name) => {
      expect(failure(readOwnFixture(name), name)).toBe(
        `${name}: is a Kubernetes custom resource (kind: APIPolicy, apiVersion: dp.wso2.com/v1alpha3), not an apk-conf; convert the apk-conf file it was generated from`,
      );
    },
  );
});

describe.skipIf(!HAS_APK)(`every real apk-conf example of APK, a cross-check ${SKIPPED_WITHOUT_APK}`, () => {
  const examples = apkExamples();
  // APK's Azure example names its endpoint with deploy-time placeholders (https://{endpoint}/...).
  const placeholder = (name: string) => name.startsWith("07-");
  it.each(examples.filter((e) => !isCustomResource(e) && !placeholder(e)))("converts %s", (name) => {
    const result = convert(readApkExample(name), name);
    expect(result.config._format_version).toBe("3.0");
    expect(result.config.services.length).toBeGreaterThan(0);
    expect(parse(result.yaml)).toEqual(result.config);
  });

  it.each(examples.filter(isCustomResource))(
    "refuses the Kubernetes custom resource %s, naming it",
    (name) => {
      expect(failure(readApkExample(name), name)).toMatch(
        new RegExp(`^${name.replace(/\./g, "\\.")}: is a Kubernetes custom resource \\(kind: \\w+`),
      );
    },
  );

  it.each(examples.filter(placeholder))(
    "refuses %s, whose endpoint host is a placeholder Kong cannot route to, naming the field",
    (name) => {
      expect(failure(readApkExample(name), name)).toBe(
        `${name}:12: endpointConfigurations.production[0].endpoint: has the placeholder host "{endpoint}" (got "https://{endpoint}/openai/deployments/{deployment-id}"): APK fills such placeholders in when it deploys; write the real host name, e.g. https://my-resource.openai.azure.com/...`,
      );
    },
  );

  it("agrees with APK's own schema on them: both accept every apk-conf example (the project's refuses placeholder hosts)", () => {
    const apkSchema = JSON.parse(readApkFile("schema/apk-schema.config-deployer.1.x.json"));
    const apkValidate = new Ajv({ strict: false, allErrors: true }).compile(apkSchema);
    const ownValidate = new Ajv({ strict: false }).compile(ownSchema);
    for (const name of examples.filter((e) => !isCustomResource(e))) {
      const doc = parse(readApkExample(name));
      expect({ name, apk: apkValidate(doc), errors: apkValidate.errors?.slice(0, 2) }).toMatchObject({
        name,
        apk: true,
      });
      expect({ name, own: ownValidate(doc) }).toEqual({ name, own: !placeholder(name) });
    }
  });
});

describe("what the conversion of an API-level policy holds (api-level-policy.apk-conf.yaml)", () => {
  const result = convert(readOwnFixture("api-level-policy.apk-conf.yaml"));
  const [production, sandbox] = result.config.services;

  it("makes a production service and a sandbox service restricted to the sandbox host", () => {
    // Every route carries the plugin, so the services' own URLs are for when the plugin server is down: a host
    // that never resolves, the endpoint's scheme, port and path (see fail-closed.test.ts).
    expect(production).toMatchObject({
      name: "llm-gateway",
      url: "http://unrouted.model-based-round-robin.invalid:8080",
    });
    expect(sandbox).toMatchObject({
      name: "llm-gateway-sandbox",
      url: "http://unrouted.model-based-round-robin.invalid:8080",
    });
    expect(result.config.services).toHaveLength(2);
    expect(sandbox?.routes.every((r) => r.hosts?.[0] === "default.sandbox.gw.wso2.com")).toBe(true);
    expect(production?.routes.every((r) => r.hosts === undefined)).toBe(true);
  });

  it("routes each operation under /<basePath>/<version> with its verb, sending the operation's path upstream", () => {
    expect(production?.routes.map((r) => [r.methods[0], r.paths[0]])).toEqual([
      ["POST", "~/llm-gateway/v1/chat/completions/?$"],
      ["GET", "~/llm-gateway/v1/models/?$"],
    ]);
    const chat = production?.routes.find((r) => r.methods[0] === "POST");
    expect(chat?.plugins).toEqual([
      { name: "request-transformer", config: { replace: { uri: "/chat/completions" } } },
    ]);
  });

  it("puts the API-level policy on the services with the converted parameters, weight 1 by default", () => {
    const config = {
      production_models: [
        { model: "model-large", endpoint: "http://llm-backend-a:8080", weight: 1 },
        { model: "model-medium", endpoint: "http://llm-backend-b:8080", weight: 1 },
        { model: "model-small", endpoint: "http://llm-backend-a:8080", weight: 1 },
      ],
      sandbox_models: [
        { model: "model-large", endpoint: "http://llm-backend-b:8080", weight: 1 },
        { model: "model-medium", endpoint: "http://llm-backend-a:8080", weight: 1 },
        { model: "model-small", endpoint: "http://llm-backend-b:8080", weight: 1 },
      ],
      on_quota_exceed_suspend_duration: 30,
      sandbox_hosts: ["default.sandbox.gw.wso2.com"],
      // The plugin's default written out, with a note: failover within the request (APK hands a 429 on).
      failover_attempts: 1,
    };
    expect(production?.plugins).toEqual([{ name: "model-based-round-robin", config }]);
    expect(sandbox?.plugins).toEqual([{ name: "model-based-round-robin", config }]);
    expect(result.notes.filter((n) => /failover_attempts: 1 \(the plugin's default\)/.test(n))).toHaveLength(
      1,
    );
  });

  it("takes the sandbox host from the options", () => {
    const other = convertApkConf(readOwnFixture("api-level-policy.apk-conf.yaml"), {
      fileName: "api.apk-conf",
      sandboxHost: "sandbox.example.test",
    });
    expect(other.config.services[1]?.routes[0]?.hosts).toEqual(["sandbox.example.test"]);
    expect(other.config.services[0]?.plugins[0]?.config.sandbox_hosts).toEqual(["sandbox.example.test"]);
  });
});

describe("other shapes", () => {
  it("puts an operation-level policy on that operation's route only, the other operation on a -direct service", () => {
    const [production, direct] = convert(readOwnFixture("operation-level-policy.apk-conf.yaml")).config
      .services;
    expect(production?.plugins).toEqual([]);
    const withPlugin = production?.routes.filter((r) =>
      r.plugins.some((p) => p.name === "model-based-round-robin"),
    );
    expect(withPlugin?.map((r) => r.methods[0])).toEqual(["POST"]);
    expect(production?.routes).toHaveLength(1);
    expect(direct).toMatchObject({ name: "llm-gateway-direct", url: "http://llm-backend-a:8080" });
    expect(direct?.routes.map((r) => [r.name, r.methods[0], r.plugins.length])).toEqual([
      ["llm-gateway-get-models", "GET", 1],
    ]);
  });

  it("turns endpointSecurity into the entry's auth header with a vault reference, and names the variable", () => {
    const result = convert(readOwnFixture("endpoint-security.apk-conf.yaml"));
    const config = result.config.services[0]?.plugins[0]?.config as {
      production_models: Record<string, unknown>[];
    };
    expect(config.production_models).toEqual([
      {
        model: "hosted-fast",
        endpoint: "https://llm.provider.test/v1",
        weight: 3,
        auth_header_name: "Authorization",
        auth_header_value: "{vault://env/provider-credentials-token}",
      },
      {
        model: "hosted-smart",
        endpoint: "https://llm.provider.test/v1",
        weight: 1,
        auth_header_name: "Authorization",
        auth_header_value: "{vault://env/provider-credentials-token}",
      },
    ]);
    expect(result.secrets).toEqual([
      {
        envVar: "PROVIDER_CREDENTIALS_TOKEN",
        reference: "{vault://env/provider-credentials-token}",
        secretName: "provider-credentials",
        key: "token",
      },
    ]);
    expect(result.yaml).toContain(
      '# Set PROVIDER_CREDENTIALS_TOKEN to key "token" of Kubernetes secret "provider-credentials"',
    );
  });

  it("lists what it did not convert", () => {
    const result = convert(readOwnFixture("endpoint-security.apk-conf.yaml"));
    expect(result.warnings).toEqual([expect.stringMatching(/^aiProvider: not converted/)]);
    // Its operations are secured (APK's default): converted, and said in a note.
    expect(result.notes).toContainEqual(
      expect.stringMatching(/^secured operations \(.*\) get Kong's key-auth plugin/),
    );
    expect(convert(readOwnFixture("api-level-policy.apk-conf.yaml")).warnings).toEqual([]);
  });

  it("turns path parameters into named regex captures and fills them into the upstream path", () => {
    const yaml = `name: threads\nbasePath: /assist\nversion: v2\nendpointConfigurations:\n  production:\n    - endpoint: https://api.example.test/v1\noperations:\n  - target: /threads/{threadId}/runs\n    verb: GET\n`;
    const route = convert(yaml).config.services[0]?.routes[0];
    expect(route?.paths).toEqual(["~/assist/v2/threads/(?<threadId>[^/]+)/runs/?$"]);
    expect(route?.plugins.find((p) => p.name === "request-transformer")?.config).toMatchObject({
      replace: { uri: "/v1/threads/$(uri_captures.threadId)/runs" },
    });
  });

  it("converts header policies to request-transformer and says so", () => {
    const yaml = `name: h\nbasePath: /h\nversion: v1\nendpointConfigurations:\n  production:\n    - endpoint: http://b.test\noperations:\n  - target: /x\n    verb: GET\n    operationPolicies:\n      request:\n        - policyName: SetHeader\n          parameters: { headerName: x-env, headerValue: prod }\n        - policyName: RemoveHeader\n          parameters: { headerName: x-debug }\n`;
    const result = convert(yaml);
    expect(
      result.config.services[0]?.routes[0]?.plugins.find((p) => p.name === "request-transformer")?.config,
    ).toMatchObject({
      add: { headers: ["x-env:prod"] },
      replace: { headers: ["x-env:prod"] },
      remove: { headers: ["x-debug"] },
    });
    expect(result.notes.join("\n")).toMatch(/SetHeader: converted to Kong's bundled request-transformer/);
  });
});

describe("bad input: one message naming the file, the line and the field", () => {
  const base = (policy: string) =>
    `name: api\nbasePath: /api\nversion: v1\nendpointConfigurations:\n  production:\n    - endpoint: http://b.test\napiPolicies:\n  request:\n    - policyName: ModelBasedRoundRobin\n      parameters:\n${policy}`;

  it("refuses text that is not YAML", () => {
    expect(failure("name: [unclosed\n", "bad.yaml")).toMatch(/^bad\.yaml:\d+: not valid YAML/);
  });

  it("refuses YAML that is not an apk-conf", () => {
    expect(failure("hello: world\n")).toBe(
      "api.apk-conf:1: is not an apk-conf: it has none of name, basePath, version, operations, endpointConfigurations",
    );
  });

  it("refuses a policy without productionModels", () => {
    expect(failure(base("        onQuotaExceedSuspendDuration: 5\n"))).toBe(
      "api.apk-conf:11: apiPolicies.request[0].parameters.productionModels: is required",
    );
  });

  it("refuses weight 0", () => {
    expect(
      failure(
        base(
          "        onQuotaExceedSuspendDuration: 5\n        productionModels:\n          - model: m\n            endpoint: http://b.test\n            weight: 0\n",
        ),
      ),
    ).toBe(
      "api.apk-conf:15: apiPolicies.request[0].parameters.productionModels[0].weight: must be >= 1 (got 0)",
    );
  });

  it("refuses a negative duration", () => {
    expect(
      failure(
        base(
          "        onQuotaExceedSuspendDuration: -1\n        productionModels:\n          - model: m\n            endpoint: http://b.test\n",
        ),
      ),
    ).toMatch(
      /^api\.apk-conf:11: apiPolicies\.request\[0\]\.parameters\.onQuotaExceedSuspendDuration: must be >= 0/,
    );
  });

  it("refuses an endpoint without a scheme", () => {
    expect(
      failure(
        base(
          "        onQuotaExceedSuspendDuration: 5\n        productionModels:\n          - model: m\n            endpoint: chat-backend:80\n",
        ),
      ),
    ).toBe(
      'api.apk-conf:14: apiPolicies.request[0].parameters.productionModels[0].endpoint: must be an http(s) URL with a scheme (got "chat-backend:80")',
    );
  });
});
