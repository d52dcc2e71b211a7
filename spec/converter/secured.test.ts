/**
 * Secure by default: an operation APK secures (`secured` defaults to true) gets a Kong authentication plugin on
 * its routes (key-auth, or jwt with --auth jwt), so the converted API refuses clients without a credential; --auth
 * none leaves them open and says so loudly. APK's rateLimit becomes Kong's bundled rate-limiting. On the project's
 * own apk-conf (spec/fixtures/apk-conf/secured-rate-limited.apk-conf.yaml), through the Kong double with a mock
 * provider standing in for the endpoint, and through the command for what it prints.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { type ConvertOptions, convertApkConf } from "../../converter/convert";
import { KongDouble } from "../../kong-double";
import { type MockProvider, startMockProvider } from "../../scripts/mock-provider";
import { ownFixturePath, readOwnFixture } from "../support/apk-files";

const FIXTURE = "secured-rate-limited.apk-conf.yaml";
const CLI = resolve("dist/converter/apk-conf-to-kong.js");
const convert = (options: Partial<ConvertOptions> = {}) =>
  convertApkConf(readOwnFixture(FIXTURE), { fileName: FIXTURE, ...options });

type Plugin = { name: string; config: Record<string, unknown> };
/** Each route's name and the names of its plugins, in order. */
const routePlugins = (options: Partial<ConvertOptions> = {}) =>
  convert(options).config.services.flatMap((s) =>
    s.routes.map((r) => [r.name, (r.plugins as Plugin[]).map((p) => p.name)]),
  );

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const child = execFile(process.execPath, [CLI, ...args], (_e, stdout, stderr) =>
      done({ code: child.exitCode, stdout, stderr }),
    );
  });
}

describe("secured operations get a Kong authentication plugin", () => {
  it("puts key-auth on the routes of secured operations (by APK's default or said), none on an open one", () => {
    expect(routePlugins()).toEqual([
      ["assistant-post-chat-completions", ["key-auth", "request-transformer"]],
      ["assistant-post-embeddings", ["key-auth", "rate-limiting", "request-transformer"]],
      ["assistant-get-models", ["request-transformer"]],
    ]);
    const keyAuth = convert().config.services[0]?.routes[0]?.plugins[0];
    // hide_credentials: the client's key to the gateway never reaches the provider.
    expect(keyAuth).toEqual({ name: "key-auth", config: { key_names: ["apikey"], hide_credentials: true } });
    expect(convert().notes).toContainEqual(
      "secured operations (POST /chat/completions, POST /embeddings) get Kong's key-auth plugin: they answer 401 until you create a consumer and its key (keyauth_credentials) (docs/converter.md)",
    );
  });

  it("puts jwt there with --auth jwt", () => {
    expect(routePlugins({ auth: "jwt" }).map(([, plugins]) => (plugins as string[])[0])).toEqual([
      "jwt",
      "jwt",
      "request-transformer",
    ]);
    expect(convert({ auth: "jwt" }).config.services[0]?.routes[0]?.plugins[0]).toEqual({
      name: "jwt",
      config: { claims_to_verify: ["exp"] },
    });
  });

  it("leaves them open with --auth none, loudly: a warning on stderr and in the YAML's header, exit 0", async () => {
    expect(routePlugins({ auth: "none" }).flatMap(([, plugins]) => plugins)).not.toContainEqual(
      expect.stringMatching(/auth|jwt/),
    );
    const r = await run([ownFixturePath(FIXTURE), "--auth", "none"]);
    expect(r.code).toBe(0);
    const warning =
      "--auth none: POST /chat/completions, POST /embeddings are secured in APK (secured defaults to true) but OPEN on Kong: anyone who reaches Kong can use them, with the provider keys the plugin sends";
    expect(r.stderr).toContain(`warning: ${warning}`);
    expect(
      r.stdout
        .split("\n")
        .filter((l) => l.startsWith("#"))
        .join(" "),
    ).toContain("WARNING: --auth none:");
  });

  it("refuses an --auth it does not know, listing the ones it does", async () => {
    const r = await run([ownFixturePath(FIXTURE), "--auth", "basic-auth"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^apk-conf-to-kong: --auth basic-auth: expected one of key-auth, jwt, none\n/);
  });
});

describe("APK's rateLimit becomes Kong's rate-limiting", () => {
  it("on the service for the API's, on the route for an operation's, the unit as Kong's field, policy local", () => {
    const [service] = convert().config.services;
    expect(service?.plugins[0]).toEqual({
      name: "rate-limiting",
      config: { day: 1000, limit_by: "service", policy: "local" },
    });
    expect(service?.routes[1]?.plugins[1]).toEqual({
      name: "rate-limiting",
      config: { minute: 3, limit_by: "service", policy: "local" },
    });
  });

  it("counts in Redis with --redis-host (and --redis-port)", async () => {
    const r = await run([ownFixturePath(FIXTURE), "--redis-host", "redis.internal", "--redis-port", "6380"]);
    expect(r.code).toBe(0);
    const config = parse(r.stdout) as { services: { plugins: Plugin[] }[] };
    expect(config.services[0]?.plugins[0]?.config).toEqual({
      day: 1000,
      limit_by: "service",
      policy: "redis",
      redis: { host: "redis.internal", port: 6380 },
    });
    expect(r.stderr).toMatch(
      /note: rateLimit 1000 per Day: converted to Kong's bundled rate-limiting on the service/,
    );
    for (const bad of [
      ["--redis-port", "6380"],
      ["--redis-host", "redis://r:6379"],
    ]) {
      const refused = await run([ownFixturePath(FIXTURE), ...bad]);
      expect(refused.code).toBe(2);
      expect(refused.stderr.split("\n")[0]).toMatch(
        /^apk-conf-to-kong: --redis-(port needs --redis-host|host redis:\/\/r:6379: expected a host name)/,
      );
    }
  });
});

describe("through the Kong double", () => {
  let kong: KongDouble;
  let backend: MockProvider;
  const KEY = "alice-secret-key";

  /** The fixture converted with `options`, its endpoint the mock, and a consumer alice with a key. */
  const load = async (options: Partial<ConvertOptions> = {}) => {
    const config = parse(
      convert(options).yaml.replaceAll("http://llm-backend-a:8080", backend.url),
    ) as Record<string, unknown>;
    config.consumers = [{ username: "alice", keyauth_credentials: [{ key: KEY }] }];
    return kong.loadConfig(config);
  };

  beforeAll(async () => {
    backend = await startMockProvider({ name: "llm-backend-a" });
    kong = await KongDouble.start({
      pluginServers: [{ name: "model-based-round-robin", pluginsDirectory: resolve("dist/plugins") }],
    });
    await load();
  });
  afterAll(async () => {
    await kong?.stop();
    await backend?.close();
  });

  const send = async (method: "GET" | "POST", path: string, headers: Record<string, string> = {}) => {
    const res = await request(`${kong.proxyUrl}/assistant/v1${path}`, {
      method,
      headers: { "content-type": "application/json", ...headers },
      ...(method === "POST" && { body: JSON.stringify({ model: "any", messages: [] }) }),
    });
    return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
  };

  it("refuses a secured operation without a key (401, as Kong's key-auth words it), and with a wrong one", async () => {
    backend.clearRequests();
    const none = await send("POST", "/chat/completions");
    expect(none.status).toBe(401);
    expect(JSON.parse(none.text)).toMatchObject({ message: "No API key found in request" });
    expect(none.headers["www-authenticate"]).toBe("Key");
    const wrong = await send("POST", "/chat/completions", { apikey: "guessed" });
    expect(wrong.status).toBe(401);
    expect(JSON.parse(wrong.text)).toMatchObject({ message: "Unauthorized" });
    expect(backend.requests).toEqual([]);
  });

  it("routes it with the consumer's key, which the provider never sees", async () => {
    backend.clearRequests();
    const ok = await send("POST", "/chat/completions", { apikey: KEY });
    expect(ok.status).toBe(200);
    expect((JSON.parse(ok.text) as { model: string }).model).toMatch(/^model-(large|small)$/);
    expect(backend.requests.map((r) => `${r.method} ${r.path}`)).toEqual(["POST /chat/completions"]);
    expect(backend.requests[0]?.headers.apikey).toBeUndefined();
  });

  it("takes the consumers docs/converter.md shows for a DB-less Kong: their key is let through", async () => {
    const doc = readFileSync("docs/converter.md", "utf8");
    const block = /\*\*DB-less Kong\*\*[\s\S]*?```yaml\n([\s\S]*?)```/.exec(doc)?.[1] ?? "";
    const { consumers } = parse(block) as { consumers: { keyauth_credentials: { key: string }[] }[] };
    const config = parse(convert().yaml.replaceAll("http://llm-backend-a:8080", backend.url)) as Record<
      string,
      unknown
    >;
    await kong.loadConfig({ ...config, consumers });
    const key = consumers[0]?.keyauth_credentials[0]?.key ?? "";
    expect((await send("POST", "/chat/completions", { apikey: key })).status).toBe(200);
    expect((await send("POST", "/chat/completions", { apikey: KEY })).status).toBe(401);
    await load();
  });

  it("leaves the operation APK marks secured: false open", async () => {
    expect((await send("GET", "/models")).status).toBe(200);
  });

  it("holds the operation's rate limit: 3 a minute, then Kong's 429 with Retry-After", async () => {
    // The limit counts per calendar minute: start early in one, so that the requests do not straddle two.
    const intoMinute = Date.now() % 60_000;
    if (intoMinute > 50_000) await new Promise((r) => setTimeout(r, 60_000 - intoMinute + 100));
    backend.clearRequests();
    const answers = [];
    for (let i = 0; i < 4; i++) answers.push(await send("POST", "/embeddings", { apikey: KEY }));
    // The mock provider has no /embeddings: it answers 404, but the request reached it.
    expect(answers.slice(0, 3).map((a) => a.headers["x-ratelimit-remaining-minute"])).toEqual([
      "2",
      "1",
      "0",
    ]);
    expect(backend.requests).toHaveLength(3);
    const refused = answers[3];
    expect(refused?.status).toBe(429);
    expect(JSON.parse(refused?.text ?? "{}")).toMatchObject({ message: "API rate limit exceeded" });
    expect(Number(refused?.headers["retry-after"])).toBeGreaterThanOrEqual(1);
  });

  it("keeps the consumers and their keys when the API is converted again into the DB-less Kong with --admin-url", async () => {
    const file = join(mkdtempSync(join(tmpdir(), "apk-secured-")), "assistant.apk-conf.yaml");
    writeFileSync(file, readOwnFixture(FIXTURE).replaceAll("http://llm-backend-a:8080", backend.url));
    const r = await run([file, "--admin-url", kong.adminUrl]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/merged with what it held: replaced services assistant/);
    expect((await send("POST", "/chat/completions")).status).toBe(401);
    expect((await send("POST", "/chat/completions", { apikey: KEY })).status).toBe(200);
  });

  it("loads jwt and rate-limiting with policy redis (Kong's schemas accept them), and jwt refuses a request without a token", async () => {
    const loaded = await load({ auth: "jwt", redis: { host: "redis.internal" } });
    expect(loaded.plugins.find((p) => p.name === "rate-limiting")?.config).toMatchObject({
      policy: "redis",
      redis: { host: "redis.internal", port: 6379, timeout: 2000 },
    });
    expect(loaded.plugins.find((p) => p.name === "jwt")?.config).toMatchObject({
      claims_to_verify: ["exp"],
      header_names: ["authorization"],
    });
    const none = await send("POST", "/chat/completions");
    expect(none.status).toBe(401);
    expect(JSON.parse(none.text)).toEqual({ message: "Unauthorized" });
    expect(none.headers["www-authenticate"]).toBe("Bearer");
    // The double checks rate-limiting's configuration as Kong does: policy redis needs redis.host.
    await expect(
      kong.loadConfig({
        _format_version: "3.0",
        plugins: [{ name: "rate-limiting", config: { minute: 5, policy: "redis" } }],
      }),
    ).rejects.toThrow(/redis/);
    await load();
  });
});
