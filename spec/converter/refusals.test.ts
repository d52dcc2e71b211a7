/**
 * What the converter refuses, and how it says so: one line naming the file, the line and the field, the API type it
 * does not convert, the unknown field with the known one it probably means, and never a whole mapping or list
 * dumped as JSON.
 */
import { describe, expect, it } from "vitest";
import { convertApkConf } from "../../converter/convert";
import { ConversionError } from "../../converter/errors";
import { closest } from "../../converter/read";
import { readOwnFixture } from "../support/apk-files";

function failure(text: string, fileName = "api.apk-conf"): string {
  try {
    convertApkConf(text, { fileName });
  } catch (error) {
    expect(error).toBeInstanceOf(ConversionError);
    return (error as Error).message;
  }
  throw new Error("expected the conversion to fail");
}

const api = (rest: string) =>
  `name: api\nbasePath: /api\nversion: v1\nendpointConfigurations:\n  production:\n    - endpoint: http://b.test\n${rest}`;

describe("API types other than REST are refused by name", () => {
  it("refuses the project's GraphQL apk-conf naming its type, not its operations", () => {
    expect(failure(readOwnFixture("refused-graphql.apk-conf.yaml"), "refused-graphql.apk-conf.yaml")).toBe(
      "refused-graphql.apk-conf.yaml:5: type: GRAPHQL is a GraphQL API, which apk-conf-to-kong does not convert: it converts REST APIs only (Kong routes them by HTTP method and path)",
    );
  });

  it.each([
    ["GRPC", "a gRPC API"],
    ["WS", "a WebSocket API"],
    ["WEBSUB", "a WebSub API"],
    ["SSE", "a Server-Sent Events API"],
  ])("refuses type %s as %s, whatever its operations look like", (type, kind) => {
    const text = `name: api\nbasePath: /api\nversion: v1\ntype: ${type}\noperations:\n  - target: /notifications\n    verb: GET\n`;
    expect(failure(text)).toBe(
      `api.apk-conf:4: type: ${type} is ${kind}, which apk-conf-to-kong does not convert: it converts REST APIs only (Kong routes them by HTTP method and path)`,
    );
  });

  it("refuses a type APK does not know, listing APK's", () => {
    expect(failure("name: api\nbasePath: /api\nversion: v1\ntype: SOAP\n")).toBe(
      'api.apk-conf:4: type: "SOAP" is not an APK API type (REST, GRAPHQL, GRPC, WS, SSE, WEBSUB); apk-conf-to-kong converts REST APIs only',
    );
  });

  it("asks for REST in APK's spelling", () => {
    expect(failure("name: api\nbasePath: /api\nversion: v1\ntype: rest\n")).toBe(
      'api.apk-conf:4: type: "rest": APK\'s types are upper case, write REST',
    );
  });

  it("converts an apk-conf without type, which APK takes as REST", () => {
    expect(convertApkConf(api(""), { fileName: "api.apk-conf" }).config.services).toHaveLength(1);
  });
});

describe("an unknown field is named, with the known field it probably misspells", () => {
  const policy = (parameters: string) =>
    api(
      `apiPolicies:\n  request:\n    - policyName: ModelBasedRoundRobin\n      parameters:\n        onQuotaExceedSuspendDuration: 5\n${parameters}`,
    );

  it("names prodModels and suggests productionModels, rather than saying productionModels is required", () => {
    expect(failure(policy("        prodModels:\n          - { model: m, endpoint: http://b.test }\n"))).toBe(
      "api.apk-conf:12: apiPolicies.request[0].parameters.prodModels: is not a known apk-conf field; did you mean productionModels?",
    );
  });

  it("suggests a field a typo away", () => {
    expect(
      failure(
        policy("        productionModels:\n          - { model: m, endpoint: http://b.test, wieght: 2 }\n"),
      ),
    ).toBe(
      "api.apk-conf:13: apiPolicies.request[0].parameters.productionModels[0].wieght: is not a known apk-conf field; did you mean weight?",
    );
    expect(failure(api("basepath: /other\n"))).toMatch(
      /^api\.apk-conf:7: basepath: .*did you mean basePath\?$/,
    );
  });

  it("lists the known fields when none is close", () => {
    expect(failure(api("operations:\n  - target: /x\n    verb: GET\n    colour: blue\n"))).toBe(
      "api.apk-conf:10: operations[0].colour: is not a known apk-conf field (known here: target, verb, secured, scopes, endpointConfigurations, operationPolicies, rateLimit)",
    );
  });

  it("finds the close name, or none", () => {
    expect(closest("prodModels", ["onQuotaExceedSuspendDuration", "productionModels", "sandboxModels"])).toBe(
      "productionModels",
    );
    expect(closest("sandboxModel", ["productionModels", "sandboxModels"])).toBe("sandboxModels");
    expect(closest("colour", ["target", "verb", "secured"])).toBeUndefined();
  });
});

describe("errors never dump a whole mapping or list", () => {
  it.each([
    [
      "a mapping where a list belongs",
      "operations:\n  target: /x\n  verb: GET\n",
      "operations: must be array (got a mapping)",
    ],
    ["a list where text belongs", "id:\n  - a\n  - b\n", "id: must be string (got a list of 2)"],
    [
      "an endpoint that is neither a URL nor a Kubernetes service",
      "operations:\n  - target: /x\n    verb: GET\n    endpointConfigurations:\n      production:\n        - endpoint: [http://a.test]\n",
      "operations[0].endpointConfigurations.production[0].endpoint: must be an http(s) URL or a Kubernetes service {name, port}",
    ],
  ])("%s", (_, rest, message) => {
    const text = failure(api(rest));
    expect(text).toContain(message);
    expect(text).not.toMatch(/[{[]"/);
    expect(text.split("\n")).toHaveLength(1);
  });

  it("shortens a long value", () => {
    const long = `x${"a".repeat(200)}`;
    expect(failure(api(`operations:\n  - target: ${long}\n    verb: GET\n`))).toMatch(
      /operations\[0\]\.target: must match \^\/ \(got "xa{56}\.\.\."\)$/,
    );
  });

  it("names a Kubernetes service endpoint's missing port", () => {
    expect(
      failure(
        "name: api\nbasePath: /api\nversion: v1\nendpointConfigurations:\n  production:\n    - endpoint:\n        name: backend\n",
      ),
    ).toBe("api.apk-conf:7: endpointConfigurations.production[0].endpoint.port: is required");
  });
});
