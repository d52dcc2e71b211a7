import { describe, expect, it } from "vitest";
import { ConfigError, normalizeConfig } from "../../../plugins/model-based-round-robin/core/config";
import { environmentOf } from "../../../plugins/model-based-round-robin/core/environment";
import { Schema } from "../../../plugins/model-based-round-robin/core/schema";
import { withDefaults } from "../../../plugins/model-based-round-robin/core/schema-derived";

const entry = (extra: Record<string, unknown> = {}) => ({
  model: "m",
  endpoint: "https://api.example.test/v1/",
  ...extra,
});

describe("configuration normalisation", () => {
  it("parses endpoints once: scheme, host, default port, path without trailing slash", () => {
    const c = normalizeConfig({
      __plugin_id: "p",
      production_models: [entry({ auth_header_name: "api-key", auth_header_value: "k" })],
    });
    expect(c.production[0]).toEqual({
      key: "https://api.example.test:443/v1#m",
      model: "m",
      weight: 1,
      scheme: "https",
      host: "api.example.test",
      port: 443,
      basePath: "/v1",
      authHeader: { name: "api-key", value: "k" },
    });
    expect(c.pluginId).toBe("p");
    expect(c.allSuspendedStatus).toBe(503);
    expect(c.billingSeconds).toBe(3600);
  });

  it.each([
    [{ production_models: [] }, /production_models: must NOT have fewer than 1 items/],
    [{}, /missing required field production_models/],
    [{ production_models: [entry({ weight: 0 })] }, /production_models\[1\]\.weight: must be >= 1/],
    [
      { production_models: [entry({ endpoint: "api.example.test" })] },
      /production_models\[1\]\.endpoint: "api.example.test" is not a URL/,
    ],
    [{ production_models: [entry({ endpoint: "ftp://x.test" })] }, /must use http or https/],
    [{ production_models: [entry({ endpoint: "https://u:p@x.test" })] }, /must not carry credentials/],
    [
      { production_models: [entry({ endpoint: "https://u:sk-secret@x.test" })] },
      /"https:\/\/\*\*\*@x\.test"/,
    ],
    [
      { production_models: [entry(), entry({ endpoint: "https://api.example.test/v1" })] },
      /production_models\[2\]: same endpoint and model as production_models\[1\]/,
    ],
    [
      { production_models: [entry()], sandbox_models: [] },
      /sandbox_models: must have at least one entry; omit it/,
    ],
    [
      { production_models: [entry()], min_suspend_duration: 10, max_suspend_duration: 5 },
      /min_suspend_duration \(10\) must not exceed/,
    ],
    [{ production_models: [entry()], all_suspended_status: 500 }, /all_suspended_status/],
    [{ production_models: [entry()], max_retry_after: 0 }, /max_retry_after: must be >= 1/],
    [
      { production_models: [entry()], insufficient_quota_suspend_duration: -1 },
      /insufficient_quota_suspend_duration: must be >= 0/,
    ],
    [
      { production_models: [entry()], insufficient_quota_suspend_duration: 1.5 },
      /insufficient_quota_suspend_duration: must be integer/,
    ],
  ])("refuses %j with a message naming the field", (raw, message) => {
    expect(() => normalizeConfig(raw)).toThrow(ConfigError);
    expect(() => normalizeConfig(raw)).toThrow(message);
  });

  it("sends no auth header when a vault reference resolved to nothing, and marks the entry keyless", () => {
    const c = normalizeConfig({
      production_models: [entry({ auth_header_name: "Authorization", auth_header_value: "" })],
    });
    expect(c.production[0]?.authHeader).toBeUndefined();
    expect(c.production[0]?.noKey).toEqual({ reference: undefined });
    expect(normalizeConfig({ production_models: [entry()] }).production[0]?.noKey).toBeUndefined();
  });
});

describe("production or sandbox", () => {
  const c = normalizeConfig({
    production_models: [entry()],
    sandbox_models: [entry()],
    sandbox_hosts: ["Sandbox.Example.test", "*.sbx.test"],
    sandbox_consumers: ["tester"],
  });

  it("is sandbox by host, compared without port and case, with a leading wildcard", () => {
    expect(environmentOf(c, { host: "sandbox.example.test:8000" })).toBe("sandbox");
    expect(environmentOf(c, { host: "team.sbx.test" })).toBe("sandbox");
    expect(environmentOf(c, { host: "sbx.test" })).toBe("production");
    expect(environmentOf(c, { host: "api.example.test" })).toBe("production");
  });

  it("is sandbox for a listed consumer by username, never by a custom_id of the same spelling", () => {
    expect(environmentOf(c, { consumer: { id: "1", username: "tester" } })).toBe("sandbox");
    expect(environmentOf(c, { consumer: { id: "2", username: "someone", custom_id: "tester" } })).toBe(
      "production",
    );
  });

  it("is sandbox for a listed consumer id, which is a UUID (as Kong's /consumers/{username or id})", () => {
    const id = "8C8D4B7A-1B0A-4F4B-9E2D-3C1B0A9F8E7D";
    const byId = normalizeConfig({
      production_models: [entry()],
      sandbox_models: [entry()],
      sandbox_consumers: [id],
    });
    expect(environmentOf(byId, { consumer: { id: id.toLowerCase(), username: "x" } })).toBe("sandbox");
    expect(environmentOf(byId, { consumer: { id: "other", username: id } })).toBe("production");
  });
});

describe("one declaration of the fields", () => {
  it("takes every default from the schema Kong sees", () => {
    const minimal = { production_models: [{ model: "m", endpoint: "http://e.test" }] };
    const filled = withDefaults(Schema, minimal) as Record<string, unknown>;
    for (const field of Schema) {
      for (const [name, def] of Object.entries(field)) {
        if ("default" in def) expect(filled[name], name).toEqual(def.default);
      }
    }
    expect(filled.production_models).toEqual([{ model: "m", endpoint: "http://e.test", weight: 1 }]);
    const c = normalizeConfig(minimal);
    expect(c).toMatchObject({
      suspendSeconds: 60,
      allSuspendedStatus: 503,
      suspendOnStatuses: new Set([429]),
      hints: { honor: true, minSeconds: 1, maxSeconds: 3600 },
      proactive: false,
      billingSeconds: 3600,
      maxBodyBytes: 8388608,
    });
  });

  it("checks the bounds the schema declares", () => {
    expect(() => normalizeConfig({ production_models: [entry({ weight: 65536 })] })).toThrow(
      /weight: must be <= 65535/,
    );
    expect(() => normalizeConfig({ production_models: [entry()], max_request_body_size: 0 })).toThrow(
      /max_request_body_size: must be >= 1/,
    );
  });
});

describe("secrets", () => {
  it("never repeats a key written into an endpoint URL", () => {
    for (const endpoint of [
      "https://user:sk-secret@x.test/v1",
      "http://sk-secret@[bad",
      "ftp://a:sk-secret@x.test",
    ]) {
      expect(() => normalizeConfig({ production_models: [entry({ endpoint })] })).toThrow(ConfigError);
      try {
        normalizeConfig({ production_models: [entry({ endpoint })] });
      } catch (error) {
        expect((error as Error).message).not.toContain("sk-secret");
      }
    }
  });
});

describe("client credential headers", () => {
  it("removes the documented default list, whatever clear_client_headers adds", () => {
    const c = normalizeConfig({ production_models: [entry()] });
    expect(c.clientCredentialHeaders).toEqual([
      "authorization",
      "api-key",
      "ocp-apim-subscription-key",
      "x-api-key",
      "x-goog-api-key",
      "apikey",
      "proxy-authorization",
      "cookie",
    ]);
  });

  it("adds clear_client_headers to the list, lower case and once each", () => {
    const c = normalizeConfig({
      production_models: [entry()],
      clear_client_headers: ["X-Portkey-Api-Key", "cf-aig-authorization", "Authorization"],
    });
    expect(c.clientCredentialHeaders).toEqual([
      ...normalizeConfig({ production_models: [entry()] }).clientCredentialHeaders,
      "x-portkey-api-key",
      "cf-aig-authorization",
    ]);
  });

  it.each(["x key", "x-key:", "x-kéy"])("refuses %j in clear_client_headers, naming the field", (name) => {
    expect(() => normalizeConfig({ production_models: [entry()], clear_client_headers: [name] })).toThrow(
      /clear_client_headers: .* is not an HTTP header name/,
    );
  });

  it("refuses an empty name in clear_client_headers, naming the element", () => {
    expect(() => normalizeConfig({ production_models: [entry()], clear_client_headers: [""] })).toThrow(
      /clear_client_headers\[1\]: must NOT have fewer than 1 characters/,
    );
  });
});
