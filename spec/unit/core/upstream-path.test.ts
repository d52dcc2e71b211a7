import { describe, expect, it } from "vitest";
import { upstreamPath } from "../../../plugins/model-based-round-robin/core/upstream-path";

describe("upstream path: endpoint path + request path relative to the route", () => {
  it("replaces the service's path with the endpoint's", () => {
    expect(upstreamPath("/v1/chat/completions", "/v1", "/openai/v1")).toBe("/openai/v1/chat/completions");
  });

  it("appends the relative path to an endpoint path when the service has none", () => {
    expect(upstreamPath("/chat/completions", undefined, "/v1")).toBe("/v1/chat/completions");
    expect(upstreamPath("/chat/completions", undefined, "/v1")).toBe("/v1/chat/completions");
    expect(upstreamPath("/chat/completions", "/", "/v1")).toBe("/v1/chat/completions");
  });

  it("keeps the relative path alone for an endpoint at the root", () => {
    expect(upstreamPath("/v1/chat/completions", "/v1", "")).toBe("/chat/completions");
  });

  it("treats the service path as whole segments only", () => {
    expect(upstreamPath("/v10/chat", "/v1", "/x")).toBe("/x/v10/chat");
  });

  it("keeps a path that does not start with the service's path whole (another plugin set it)", () => {
    expect(upstreamPath("/other/chat", "/v1", "/base")).toBe("/base/other/chat");
  });

  it("sends / when nothing is left", () => {
    expect(upstreamPath("/v1", "/v1", "")).toBe("/");
    expect(upstreamPath("/", undefined, "")).toBe("/");
    expect(upstreamPath("/v1/", "/v1/", "/base")).toBe("/base");
  });

  it("accepts a service path with a trailing slash", () => {
    expect(upstreamPath("/v1/chat/completions", "/v1/", "/api")).toBe("/api/chat/completions");
  });

  it("leaves percent-escapes as Kong wrote them into $upstream_uri", () => {
    expect(upstreamPath("/v1/files/a%20b", "/v1", "/v2")).toBe("/v2/files/a%20b");
  });
});
