import { describe, expect, it } from "vitest";
import { balancerFor } from "../../../plugins/model-based-round-robin/core/balancer";
import { credentialsIn } from "../../../plugins/model-based-round-robin/core/client-credentials";
import { normalizeConfig } from "../../../plugins/model-based-round-robin/core/config";
import { hostnameType, UNROUTED_HOST } from "../../../plugins/model-based-round-robin/core/misconfiguration";
import {
  admit,
  checkBody,
  decide,
  failure,
  type ModelReadyBody,
  misconfigured,
  type RequestHead,
} from "../../../plugins/model-based-round-robin/core/routing";
import { SAFE_PATHS, UNSAFE_PATHS } from "../../support/unsafe-paths";

let ids = 0;
function setup(extra: Record<string, unknown> = {}) {
  const config = normalizeConfig({
    __plugin_id: `routing-${++ids}`,
    production_models: [
      { model: "a", endpoint: "http://one.test/v1", weight: 2 },
      { model: "b", endpoint: "http://two.test/v1" },
    ],
    ...extra,
  });
  return { config, balancer: balancerFor(config) };
}

const json = { contentLength: "20" } satisfies RequestHead;

const upstream = { uri: "/v1/chat/completions", serviceProtocol: "http", servicePath: "/v1" };

function request(head: RequestHead, checked: ModelReadyBody, uri = upstream.uri) {
  return { head, body: checked, upstream: { ...upstream, uri } };
}

function body(text: string): ModelReadyBody {
  const checked = checkBody(Buffer.from(text, "utf8"));
  if (checked.kind !== "body") throw new Error(`not a good body: ${checked.body.error.message}`);
  return checked;
}

describe("admitting a request on its headers", () => {
  it("reads no body from a request that has none", () => {
    expect(admit(setup().config, {})).toEqual({ kind: "bodiless" });
  });

  it("asks for the body when it has a length within the limit, or is chunked", () => {
    expect(admit(setup().config, json)).toBeUndefined();
    expect(admit(setup().config, { transferEncoding: "chunked" })).toBeUndefined();
  });

  it("refuses a declared length over max_request_body_size with 413, before reading it", () => {
    const refusal = admit(setup({ max_request_body_size: 100 }).config, { contentLength: "101" });
    expect(refusal).toMatchObject({
      kind: "refuse",
      status: 413,
      body: { error: { type: "invalid_request_error", code: "request_too_large" } },
    });
    expect(refusal?.kind === "refuse" && refusal.body.error.message).toMatch(/101 bytes .* 100 bytes/);
  });
});

describe("checking the body", () => {
  it.each([
    ["", /empty/],
    ["{", /not valid JSON/],
    ["[1]", /must be a JSON object, got an array/],
  ])("refuses %j with 400 in OpenAI's error shape", (text, message) => {
    const refusal = checkBody(Buffer.from(text));
    expect(refusal).toMatchObject({ kind: "refuse", status: 400, body: { error: { code: "invalid_body" } } });
    expect(refusal.kind === "refuse" && refusal.body.error.message).toMatch(message);
  });
});

describe("deciding the route", () => {
  it("routes by smooth rotation and rewrites the model only when it differs", () => {
    const { config, balancer } = setup();
    const first = decide(config, balancer, request(json, body('{"model":"a"}')));
    const second = decide(config, balancer, request(json, body('{"model":"a"}')));
    expect(first).toMatchObject({ kind: "route", env: "production", entry: { model: "a" }, body: undefined });
    expect(second).toMatchObject({ kind: "route", entry: { model: "b" } });
    expect(second.kind === "route" && second.body?.toString()).toBe('{"model":"b"}');
  });

  it("refuses a sandbox request with 404 when there are no sandbox models, never sending it to production", () => {
    const { config, balancer } = setup({ sandbox_hosts: ["sbx.test"] });
    expect(decide(config, balancer, request({ ...json, host: "sbx.test" }, body("{}")))).toMatchObject({
      kind: "refuse",
      status: 404,
      body: { error: { code: "sandbox_not_configured" } },
    });
  });

  it("answers all_suspended_status with Retry-After when every entry is suspended", () => {
    const { config, balancer } = setup({ all_suspended_status: 429 });
    balancer.suspend("production", config.production[0]?.key ?? "", 1500);
    balancer.suspend("production", config.production[1]?.key ?? "", 60_000);
    const refusal = decide(config, balancer, request(json, body("{}")));
    expect(refusal).toMatchObject({
      kind: "refuse",
      status: 429,
      body: { error: { type: "rate_limit_error", code: "all_models_suspended" } },
      headers: { "Retry-After": "2" },
    });
    expect(Number(refusal.kind === "refuse" && refusal.headers?.["retry-after-ms"])).toBeGreaterThan(1400);
  });

  it("advertises at most max_retry_after (60 s by default), in both headers and the message", () => {
    const { config, balancer } = setup();
    for (const entry of config.production) balancer.suspend("production", entry.key, 3_600_000);
    const refusal = decide(config, balancer, request(json, body("{}")));
    expect(refusal).toMatchObject({
      kind: "refuse",
      status: 503,
      headers: { "Retry-After": "60", "retry-after-ms": "60000" },
    });
    expect(refusal.kind === "refuse" && refusal.body.error.message).toMatch(/retry in 60 s$/);

    const capped = setup({ max_retry_after: 5 });
    for (const entry of capped.config.production) capped.balancer.suspend("production", entry.key, 3_600_000);
    expect(decide(capped.config, capped.balancer, request(json, body("{}")))).toMatchObject({
      headers: { "Retry-After": "5", "retry-after-ms": "5000" },
    });
  });

  it("advertises the real wait when it is shorter than max_retry_after", () => {
    const { config, balancer } = setup({ max_retry_after: 5 });
    for (const entry of config.production) balancer.suspend("production", entry.key, 2500);
    const refusal = decide(config, balancer, request(json, body("{}")));
    expect(refusal).toMatchObject({ headers: { "Retry-After": "3" } });
    expect(Number(refusal.kind === "refuse" && refusal.headers?.["retry-after-ms"])).toBeLessThanOrEqual(
      2500,
    );
  });

  it("answers 503 by default", () => {
    const { config, balancer } = setup();
    for (const entry of config.production) balancer.suspend("production", entry.key, 10_000);
    expect(decide(config, balancer, request(json, body("{}")))).toMatchObject({
      kind: "refuse",
      status: 503,
    });
  });

  it("probes a suspect entry once, never with a stream or an upgrade", () => {
    const { config, balancer } = setup({
      production_models: [{ model: "a", endpoint: "http://one.test" }],
    });
    const key = config.production[0]?.key ?? "";
    balancer.markSuspect("production", key);
    expect(decide(config, balancer, request(json, body('{"stream":true}')))).toMatchObject({ probe: false });
    expect(decide(config, balancer, request({ ...json, upgrade: "websocket" }, body("{}")))).toMatchObject({
      probe: false,
    });
    // Kong turns buffering off for `websocket` only; any other Upgrade is proxied buffered like the rest.
    expect(decide(config, balancer, request({ ...json, upgrade: "h2c" }, body("{}")))).toMatchObject({
      probe: true,
    });
    expect(decide(config, balancer, request(json, body("{}")))).toMatchObject({ probe: false });
  });

  it("turns a plugin failure into a 500 in OpenAI's shape", () => {
    expect(failure("broken")).toEqual({
      kind: "refuse",
      status: 500,
      body: { error: { message: "broken", type: "server_error", param: null, code: "gateway_plugin_error" } },
    });
  });

  it("leaves scheme and path alone when Kong would send them anyway, and sets them otherwise", () => {
    const { config, balancer } = setup({
      production_models: [
        { model: "a", endpoint: "http://one.test/v1" },
        { model: "b", endpoint: "https://two.test/openai/deployments/b" },
      ],
    });
    expect(decide(config, balancer, request(json, body("{}")))).toMatchObject({
      scheme: undefined,
      path: undefined,
    });
    expect(decide(config, balancer, request(json, body("{}")))).toMatchObject({
      scheme: "https",
      path: "/openai/deployments/b/chat/completions",
    });
  });

  it.each(UNSAFE_PATHS)("refuses the client path %s with 400 before taking a turn", (uri, message) => {
    const { config, balancer } = setup();
    const refused = decide(config, balancer, request(json, body("{}"), uri));
    expect(refused).toMatchObject({ kind: "refuse", status: 400, body: { error: { code: "invalid_path" } } });
    expect(refused.kind === "refuse" && refused.body.error.message).toMatch(message);
    expect(decide(config, balancer, request(json, body("{}")))).toMatchObject({ entry: { model: "a" } });
  });

  it.each(SAFE_PATHS)("routes the client path %s as it is", (uri) => {
    const { config, balancer } = setup();
    expect(decide(config, balancer, request(json, body("{}"), uri))).toMatchObject({ kind: "route" });
  });

  it("removes the client's own credentials when the entry sends a key, and only then", () => {
    const { config, balancer } = setup({
      production_models: [
        { model: "a", endpoint: "http://one.test", auth_header_name: "api-key", auth_header_value: "k" },
        { model: "b", endpoint: "http://two.test" },
      ],
    });
    const sent = Object.fromEntries(
      ["authorization", "api-key", "x-api-key", "ocp-apim-subscription-key", "x-goog-api-key", "x-other"].map(
        (name) => [name, ["client"]],
      ),
    );
    const head = { ...json, credentials: credentialsIn(config.clientCredentialHeaders, sent) };
    expect(decide(config, balancer, request(head, body("{}")))).toMatchObject({
      clearHeaders: ["authorization", "ocp-apim-subscription-key", "x-api-key", "x-goog-api-key"],
    });
    expect(decide(config, balancer, request(head, body("{}")))).toMatchObject({ clearHeaders: [] });
  });

  it("routes a bodiless request (GET /models) to the next entry with its key, without taking its turn", () => {
    const { config, balancer } = setup({
      production_models: [
        {
          model: "a",
          endpoint: "http://one.test/v1",
          weight: 2,
          auth_header_name: "api-key",
          auth_header_value: "k",
        },
        { model: "b", endpoint: "https://two.test/v1" },
      ],
    });
    const models = {
      head: {},
      body: { kind: "bodiless" as const },
      upstream: { ...upstream, uri: "/v1/models" },
    };
    expect(decide(config, balancer, models)).toMatchObject({
      kind: "route",
      entry: { model: "a" },
      body: undefined,
    });
    expect(decide(config, balancer, models)).toMatchObject({ entry: { model: "a" } });
    const chats = [1, 2, 3].map(() => decide(config, balancer, request(json, body("{}"))));
    expect(chats.map((r) => r.kind === "route" && r.entry.model)).toEqual(["a", "b", "a"]);
    for (const entry of config.production) balancer.suspend("production", entry.key, 1000);
    expect(decide(config, balancer, models)).toMatchObject({ kind: "refuse", status: 503 });
  });
});

describe("a service whose host is an IP address", () => {
  const entries = (endpoints: string[]) => ({
    production_models: endpoints.map((endpoint, i) => ({ model: `m${i}`, endpoint })),
  });
  const onService = (serviceHost: string, uri = upstream.uri) => ({
    head: json,
    body: body("{}"),
    upstream: { ...upstream, uri, serviceHost },
  });

  it("classifies hosts as Kong's hostname_type does", () => {
    expect(hostnameType("10.0.0.7")).toBe("ipv4");
    expect(hostnameType("::1")).toBe("ipv6");
    expect(hostnameType("[fe80::1]")).toBe("ipv6");
    expect(hostnameType("api.openai.com")).toBe("name");
    expect(hostnameType("localhost")).toBe("name");
    expect(hostnameType(UNROUTED_HOST)).toBe("name");
  });

  it.each(["10.0.0.7", "::1"])(
    "refuses with 500 gateway_misconfigured (service host %s) when an endpoint has a host name, before taking a turn",
    (serviceHost) => {
      const { config, balancer } = setup(entries(["http://10.0.0.8/v1", "https://api.provider.test/v1"]));
      const refused = decide(config, balancer, onService(serviceHost));
      expect(refused).toEqual({
        kind: "refuse",
        status: 500,
        body: {
          error: {
            message: `the service's host ${serviceHost} is an IP address, so Kong will not resolve the endpoint's host name api.provider.test; give the service a host name such as unrouted.model-based-round-robin.invalid`,
            type: "server_error",
            param: null,
            code: "gateway_misconfigured",
          },
        },
        problem: refused.kind === "refuse" ? refused.body.error.message : "",
      });
      // No turn was taken: the next routable request gets the first entry.
      expect(decide(config, balancer, request(json, body("{}")))).toMatchObject({ entry: { model: "m0" } });
    },
  );

  it("routes when every endpoint of the environment is an IP address, or the service has a host name", () => {
    const ips = setup(entries(["http://10.0.0.8/v1", "http://[::1]:8080/v1"]));
    expect(decide(ips.config, ips.balancer, onService("10.0.0.7"))).toMatchObject({ kind: "route" });
    const named = setup(entries(["http://10.0.0.8/v1", "https://api.provider.test/v1"]));
    for (const _ of [1, 2]) {
      expect(decide(named.config, named.balancer, onService(UNROUTED_HOST))).toMatchObject({ kind: "route" });
    }
    // Kong sent no service (a route without one): nothing to judge.
    expect(decide(named.config, named.balancer, request(json, body("{}")))).toMatchObject({ kind: "route" });
  });

  it("judges only the environment the request is for", () => {
    const { config, balancer } = setup({
      production_models: [{ model: "p", endpoint: "http://10.0.0.8" }],
      sandbox_models: [{ model: "s", endpoint: "https://sandbox.provider.test" }],
      sandbox_hosts: ["sbx.test"],
    });
    expect(decide(config, balancer, onService("10.0.0.7"))).toMatchObject({ kind: "route" });
    const sandbox = { ...onService("10.0.0.7"), head: { ...json, host: "sbx.test" } };
    expect(decide(config, balancer, sandbox)).toMatchObject({ kind: "refuse", status: 500 });
  });
});

describe("a configuration Kong accepted and the plugin cannot use", () => {
  it("is refused with 500 gateway_misconfigured naming the problem, marked to be logged", () => {
    expect(misconfigured("min_suspend_duration (10) must not exceed max_suspend_duration (5)")).toEqual({
      kind: "refuse",
      status: 500,
      body: {
        error: {
          message:
            "the model-based-round-robin plugin is misconfigured: min_suspend_duration (10) must not exceed max_suspend_duration (5)",
          type: "server_error",
          param: null,
          code: "gateway_misconfigured",
        },
      },
      problem: "min_suspend_duration (10) must not exceed max_suspend_duration (5)",
    });
  });
});
