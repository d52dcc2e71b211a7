/**
 * What every integration test of the plugin needs: the built plugin in the project's plugin server (kong-pdk's server, leak-free) behind
 * the Kong double, and mock OpenAI-compatible providers on real sockets.
 */
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { request } from "undici";
import { afterAll, beforeAll, beforeEach } from "vitest";
import { KongDouble } from "../../kong-double";
import { type MockProvider, startMockProvider } from "../../scripts/mock-provider";

export const PLUGIN_NAME = "model-based-round-robin";
export const PLUGIN_DIR = resolve(process.cwd(), "dist/plugins");
export const PRODUCTION_HOST = "api.example.test";
export const SANDBOX_HOST = "sandbox.example.test";

/** OpenAI's 429 body when the account behind a key has no credit left (the billing error the plugin benches). */
export const BILLING_EXHAUSTED = {
  error: {
    message:
      "You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.",
    type: "insufficient_quota",
    param: null,
    code: "insufficient_quota",
  },
};

/**
 * The direct path (failover_attempts 0): Kong proxies to the entry itself and the log phase observes the answer.
 * The suites of the log phase's signals (billing probes, Kong's own 502/504, the choice in Kong's log data) run
 * on it; spec/integration/relay.test.ts covers the relay, the default.
 */
export const DIRECT = { failover_attempts: 0 } as const;
export const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export interface Bed {
  kong: KongDouble;
  providers: MockProvider[];
  stop(): Promise<void>;
}

export async function startBed(
  opts: { providers?: number; kongOptions?: Record<string, unknown> } = {},
): Promise<Bed> {
  const providers = await Promise.all(
    Array.from({ length: opts.providers ?? 2 }, (_, i) =>
      startMockProvider({ name: `provider-${"abcdefgh"[i]}` }),
    ),
  );
  const kong = await KongDouble.start({
    pluginServers: [{ name: PLUGIN_NAME, pluginsDirectory: PLUGIN_DIR }],
    ...opts.kongOptions,
  });
  return {
    kong,
    providers,
    async stop() {
      await kong.stop();
      await Promise.all(providers.map((p) => p.close()));
    },
  };
}

/**
 * A bed for the enclosing describe block (or file): started before its tests, stopped after them, every
 * provider reset (no failures queued, no requests recorded) before each test. `onStart` receives it.
 */
export function useBed(
  opts: { providers?: number; kongOptions?: Record<string, unknown> },
  onStart: (bed: Bed) => void,
): void {
  let bed: Bed | undefined;
  beforeAll(async () => {
    bed = await startBed(opts);
    onStart(bed);
  });
  afterAll(async () => bed?.stop());
  beforeEach(() => {
    for (const p of bed?.providers ?? []) {
      p.reset();
      p.clearRequests();
    }
  });
}

/** A declarative config with one service and route for the OpenAI API, the plugin on the service. */
export function llmService(
  pluginConfig: Record<string, unknown>,
  extra: Record<string, unknown> = {},
): object {
  return {
    _format_version: "3.0",
    services: [
      {
        name: "llm",
        url: "http://placeholder.invalid:9/v1",
        routes: [{ name: "chat", paths: ["/openai/v1"], strip_path: true }],
        plugins: [{ name: PLUGIN_NAME, config: pluginConfig }],
      },
    ],
    ...extra,
  };
}

/**
 * Loads llmService with the plugin under a fresh plugin id, so that no rotation or suspension state carries
 * over from another test; `service` overrides fields of the service (url, timeouts, retries). Returns the id.
 */
export async function loadPlugin(
  kong: KongDouble,
  pluginConfig: Record<string, unknown>,
  service: Record<string, unknown> = {},
): Promise<string> {
  const config = llmService(pluginConfig) as { services: Record<string, unknown>[] };
  const [first] = config.services as [{ plugins: { id?: string }[] }];
  const id = randomUUID();
  Object.assign(first, service);
  (first.plugins[0] as { id?: string }).id = id;
  await kong.loadConfig(config);
  return id;
}

/**
 * Loads llmService with the plugin under a fresh id and Kong's file-log on the service, writing each request's
 * log data as a line of a file in `dir`; `service` overrides fields of the service, `global` puts the plugin on
 * no service. Returns the id and a reader of the logged lines.
 */
export async function loadPluginWithFileLog(
  kong: KongDouble,
  dir: string,
  pluginConfig: Record<string, unknown>,
  opts: { service?: Record<string, unknown>; global?: boolean } = {},
  // biome-ignore lint/suspicious/noExplicitAny: tests read Kong's log lines by path
): Promise<{ id: string; logged: () => any[] }> {
  const id = randomUUID();
  const logFile = join(dir, `${id}.log`);
  const config = llmService({}) as { services: Record<string, unknown>[]; plugins?: unknown[] };
  const plugin = { id, name: PLUGIN_NAME, config: pluginConfig };
  const fileLog = { name: "file-log", config: { path: logFile } };
  Object.assign(config.services[0] as object, opts.service, {
    plugins: opts.global ? [fileLog] : [fileLog, plugin],
  });
  if (opts.global) config.plugins = [plugin];
  await kong.loadConfig(config);
  const logged = () =>
    readFileSync(logFile, "utf8")
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line));
  return { id, logged };
}

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  // biome-ignore lint/suspicious/noExplicitAny: tests read OpenAI-shaped bodies by path
  json: any;
}

/** One request through the proxy port. undici's request, not fetch: fetch does not let a caller set Host. */
export async function send(
  kong: KongDouble,
  opts: {
    method?: string;
    path?: string;
    host?: string;
    headers?: Record<string, string>;
    body?: unknown;
  } = {},
): Promise<Reply> {
  const body =
    opts.body === undefined || typeof opts.body === "string" ? opts.body : JSON.stringify(opts.body);
  const res = await request(`${kong.proxyUrl}${opts.path ?? "/openai/v1/chat/completions"}`, {
    method: (opts.method ?? "POST") as "POST",
    headers: {
      host: opts.host ?? PRODUCTION_HOST,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
      ...opts.headers,
    },
    body,
  });
  const text = await res.body.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.statusCode, headers: res.headers, text, json };
}

export function chat(
  kong: KongDouble,
  body: unknown,
  opts: { host?: string; headers?: Record<string, string> } = {},
) {
  return send(kong, { ...opts, body });
}
