/** What the relay sends to an entry and what Kong gets back (core/failover.ts), without I/O. */
import { describe, expect, it } from "vitest";
import { normalizeConfig } from "../../../plugins/model-based-round-robin/core/config";
import {
  answerHeaders,
  attemptHeaders,
  unreachableRefusal,
} from "../../../plugins/model-based-round-robin/core/failover";

const [keyed, open] = normalizeConfig({
  production_models: [
    {
      model: "k",
      endpoint: "https://keyed.test/v1",
      auth_header_name: "api-key",
      auth_header_value: "sk-own",
    },
    { model: "o", endpoint: "http://[::1]:8080/v1" },
  ],
}).production as [Parameters<typeof attemptHeaders>[1], Parameters<typeof attemptHeaders>[1]];

describe("an attempt's headers", () => {
  const raw = [
    ...["Host", "127.0.0.1:9000", "Content-Length", "12", "Connection", "keep-alive, x-hop"],
    ...["x-hop", "1", "Authorization", "Bearer client", "API-Key", "client-key", "x-relay", "ticket"],
    ...["Accept", "a", "accept", "b", "x-forwarded-for", "10.0.0.1", "transfer-encoding", "chunked"],
  ];

  it("keeps the client's own headers (duplicates, bytes, order) and drops hop-by-hop ones and the ticket", () => {
    const out = attemptHeaders(raw, open, new Set(["x-relay"]), []);
    expect(out).toEqual([
      ...["Authorization", "Bearer client", "API-Key", "client-key"],
      ...["Accept", "a", "accept", "b", "x-forwarded-for", "10.0.0.1"],
      ...["host", "[::1]"],
    ]);
  });

  it("sends the entry's key instead of the client's credentials, with Host = the entry's host", () => {
    const out = attemptHeaders(raw, keyed, new Set(["x-relay"]), ["authorization"]);
    expect(out).toEqual([
      ...["Accept", "a", "accept", "b", "x-forwarded-for", "10.0.0.1"],
      ...["host", "keyed.test", "api-key", "sk-own"],
    ]);
  });
});

describe("the answer's headers", () => {
  it("passes the provider's on except hop-by-hop ones, then the plugin's own", () => {
    const out = answerHeaders(
      {
        "content-type": "text/event-stream",
        connection: "close",
        "transfer-encoding": "chunked",
        "x-request-id": "r",
      },
      ["X-Kong-LLM-Model", "m"],
    );
    expect(out).toEqual([
      ...["content-type", "text/event-stream", "x-request-id", "r"],
      ...["X-Kong-LLM-Model", "m"],
    ]);
  });

  it("lets the plugin's own header replace the provider's of the same name, whatever the case", () => {
    const out = answerHeaders(
      { "x-kong-llm-model": "forged", "content-length": "99", "set-cookie": ["a=1", "b=2"] },
      ["X-Kong-LLM-Model", "m", "content-length", "12"],
    );
    expect(out).toEqual([
      ...["set-cookie", ["a=1", "b=2"]],
      ...["X-Kong-LLM-Model", "m", "content-length", "12"],
    ]);
  });
});

describe("the relay's answer when no provider answered", () => {
  it("is a 504 for a timeout or the budget's end, a 502 for a connection failure", () => {
    expect(unreachableRefusal("timeout", "x", 50_000)).toMatchObject({
      status: 504,
      body: { error: { code: "upstream_timeout" } },
    });
    expect(unreachableRefusal("budget", "x", 50_000).body.error.message).toMatch(/failover budget of 50 s/);
    expect(unreachableRefusal("connect", "ECONNREFUSED", 50_000)).toMatchObject({
      status: 502,
      body: {
        error: { code: "upstream_unreachable", message: "the provider could not be reached: ECONNREFUSED" },
      },
    });
  });
});
