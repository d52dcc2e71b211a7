import { request as httpRequest } from "node:http";
import { request } from "undici";
import { describe, expect, it } from "vitest";
import { type Bed, chat, llmService, loadPlugin, PRODUCTION_HOST, send, useBed } from "../support/harness";
import { PLUGIN_REFUSED_PATHS } from "../support/unsafe-paths";

describe("input and secrets, through the Kong double", () => {
  let bed: Bed;
  let a: Bed["providers"][number];

  useBed({ providers: 1 }, (started) => {
    bed = started;
    [a] = started.providers as [typeof a];
  });

  const configure = (pluginConfig: Record<string, unknown>) =>
    loadPlugin(bed.kong, pluginConfig, { url: `${a.url}/v1` });

  it("refuses an endpoint URL with credentials at configuration time, without echoing the key", async () => {
    const res = await request(`${bed.kong.adminUrl}/config`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(
        llmService({
          production_models: [{ model: "m", endpoint: "http://user:sk-secret@provider.test/v1" }],
        }),
      ),
    });
    const text = await res.body.text();
    expect(res.statusCode).toBe(400);
    expect(text).toContain("must not carry credentials");
    expect(text).not.toContain("sk-secret");
  });

  it.each(["/openai/v1/@evil.test", "/openai/v1/a%2Fb"])(
    "refuses the client path %s with 400, and nothing reaches the provider",
    async (path) => {
      await configure({ production_models: [{ model: "m", endpoint: `${a.url}/v1` }] });
      const reply = await send(bed.kong, { path, body: { model: "x" } });
      expect(reply.status).toBe(400);
      expect(reply.json?.error?.code).toBe("invalid_path");
      expect(a.requests).toHaveLength(0);
    },
  );

  /** A POST with the path exactly as given: fetch and undici would resolve dot segments first (WHATWG URL). */
  function postRaw(path: string): Promise<{ status: number; text: string }> {
    const { hostname, port } = new URL(bed.kong.proxyUrl);
    return new Promise((resolveReply, reject) => {
      const req = httpRequest(
        {
          hostname,
          port,
          path,
          method: "POST",
          headers: { host: PRODUCTION_HOST, "content-type": "application/json" },
        },
        (res) => {
          let text = "";
          res.on("data", (c) => {
            text += c;
          });
          res.on("end", () => resolveReply({ status: res.statusCode ?? 0, text }));
        },
      );
      req.on("error", reject);
      req.end(JSON.stringify({ model: "x" }));
    });
  }

  // The paths Kong normalises (KONG_NORMALISED_PATHS) are the tests below; every other one reaches the plugin
  // as written and must stop there.
  it("refuses every path of the list that Kong passes as written with invalid_path: none reaches the provider", async () => {
    await configure({ production_models: [{ model: "m", endpoint: `${a.url}/v1` }] });
    const answers: string[] = [];
    for (const [path] of PLUGIN_REFUSED_PATHS) {
      const reply = await postRaw(`/openai${path}`);
      answers.push(`${path} ${reply.status} ${parseCode(reply.text) ?? reply.text.slice(0, 60)}`);
    }
    expect(answers).toEqual(PLUGIN_REFUSED_PATHS.map(([path]) => `${path} 400 invalid_path`));
    expect(a.requests.map((r) => r.path)).toEqual([]);
  });

  // Kong routes on the normalised path and builds $upstream_uri from it (kong/router/utils.lua strip_uri_args →
  // kong/tools/uri.lua normalize): the plugin never sees a dot segment or `//`, and the provider gets the
  // resolved path with the chosen model.
  it.each([
    ["/openai/v1/models/../files", "/v1/files"],
    ["/openai/v1/models/%2e%2e/files", "/v1/files"],
    ["/openai/v1/models/%2E./files", "/v1/files"],
    ["/openai/v1//chat//completions", "/v1/chat/completions"],
    ["/openai/v1/./chat/completions", "/v1/chat/completions"],
  ])("sends the client path %s to the provider as Kong normalised it (%s)", async (path, upstream) => {
    await configure({ production_models: [{ model: "m", endpoint: `${a.url}/v1` }] });
    await postRaw(path);
    expect(a.requests.map((r) => r.path)).toEqual([upstream]);
    expect(a.requests[0]?.json).toMatchObject({ model: "m" });
  });

  it("never lets a path climb out of the route: nginx refuses '..' above the root, Kong's router drops the rest", async () => {
    await configure({ production_models: [{ model: "m", endpoint: `${a.url}/v1` }] });
    const above = await postRaw("/openai/v1/../../../etc/passwd");
    expect(above.status).toBe(400);
    expect(above.text).toMatch(/Bad request/);
    // Out of the route's prefix once normalised: no route, nothing proxied.
    expect((await postRaw("/openai/v1/../../v2/x")).status).toBe(404);
    expect((await postRaw("/openai/%2e%2e/admin")).status).toBe(404);
    expect(a.requests).toHaveLength(0);
  });

  it("sends only the entry's key: the client's Authorization, api-key and x-api-key do not reach the provider", async () => {
    await configure({
      production_models: [
        { model: "m", endpoint: `${a.url}/v1`, auth_header_name: "api-key", auth_header_value: "entry-key" },
      ],
    });
    const reply = await chat(
      bed.kong,
      { model: "x" },
      { headers: { authorization: "Bearer client", "api-key": "client", "x-api-key": "client" } },
    );
    expect(reply.status).toBe(200);
    expect(a.requests[0]?.headers).toMatchObject({ "api-key": "entry-key" });
    expect(a.requests[0]?.headers.authorization).toBeUndefined();
    expect(a.requests[0]?.headers["x-api-key"]).toBeUndefined();
  });

  // Every header of the default list (docs/security.md) and one added by clear_client_headers, through Kong's
  // proxying and through the plugin's own requests (failover); without an entry key they are the client's to send.
  const clientCredentials = {
    authorization: "Bearer client",
    "api-key": "client",
    "ocp-apim-subscription-key": "client",
    "x-api-key": "client",
    "x-goog-api-key": "client",
    apikey: "client",
    "proxy-authorization": "Basic Y2xpZW50",
    cookie: "session=client",
    "x-portkey-api-key": "client",
  };
  it.each([
    ["Kong proxies", 0],
    ["the plugin sends it (failover)", 1],
  ])("removes every client credential header when the entry sends its own key: %s", async (_, attempts) => {
    await configure({
      failover_attempts: attempts,
      clear_client_headers: ["X-Portkey-Api-Key"],
      production_models: [
        { model: "m", endpoint: `${a.url}/v1`, auth_header_name: "api-key", auth_header_value: "entry-key" },
        { model: "n", endpoint: `${a.url}/v1` },
      ],
    });
    const first = await chat(bed.kong, { model: "x" }, { headers: clientCredentials });
    const second = await chat(bed.kong, { model: "x" }, { headers: clientCredentials });
    expect([first.status, second.status]).toEqual([200, 200]);
    const [keyed, keyless] = a.requests as [(typeof a.requests)[number], (typeof a.requests)[number]];
    expect(keyed.json).toMatchObject({ model: "m" });
    const leaked = Object.keys(clientCredentials).filter((name) => keyed.headers[name] !== undefined);
    expect(leaked).toEqual(["api-key"]);
    expect(keyed.headers["api-key"]).toBe("entry-key");
    // The entry without a key of its own: the client's key is the one its provider needs.
    expect(keyless.json).toMatchObject({ model: "n" });
    expect(keyless.headers).toMatchObject(clientCredentials);
  });

  it("refuses a clear_client_headers name that is no header name at configuration time", async () => {
    const res = await request(`${bed.kong.adminUrl}/config`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(
        llmService({
          clear_client_headers: ["x key"],
          production_models: [{ model: "m", endpoint: `${a.url}/v1` }],
        }),
      ),
    });
    const text = await res.body.text();
    expect(res.statusCode).toBe(400);
    expect(text).toContain("clear_client_headers");
  });

  it("drops a byte order mark even when the client already named the chosen model", async () => {
    await configure({ production_models: [{ model: "m", endpoint: `${a.url}/v1` }] });
    const bom = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"model":"m"}')]);
    const res = await request(`${bed.kong.proxyUrl}/openai/v1/chat/completions`, {
      method: "POST",
      headers: { host: PRODUCTION_HOST, "content-type": "application/json" },
      body: bom,
    });
    await res.body.text();
    expect(res.statusCode).toBe(200);
    expect(a.requests[0]?.body.toString("utf8")).toBe('{"model":"m"}');
  });
});

function parseCode(text: string): string | undefined {
  try {
    return (JSON.parse(text) as { error?: { code?: string } }).error?.code;
  } catch {
    return undefined;
  }
}
