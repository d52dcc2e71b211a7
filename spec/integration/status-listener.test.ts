/**
 * The plugin server's opt-in status listener (MODEL_BASED_ROUND_ROBIN_STATUS_LISTEN): GET /status and GET /metrics
 * show what the plugin decided, read over real HTTP from the real plugin server behind the Kong double, after
 * real traffic. Port 0 takes a free port; the listener logs its address on the server's stderr.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { get as httpGet } from "node:http";
import { connect, createServer, type Server } from "node:net";
import { request } from "undici";
import { afterEach, describe, expect, it, vi } from "vitest";
import { accepts, KongDouble, stockServerBin } from "../../kong-double";
import { socketPath, startArgv } from "../../kong-double/pluginserver-settings";
import {
  ANSWER_BURST,
  ANSWERS_PER_SECOND,
  MAX_CONNECTIONS,
  RENDERS_PER_SECOND,
} from "../../plugins/model-based-round-robin/status/server";
import { statusListenerUrl } from "../../scripts/lib/status-url";
import { type MockProvider, startMockProvider } from "../../scripts/mock-provider";
import { stopChild } from "../support/double-tests";
import {
  type Bed,
  chat,
  DIRECT,
  loadPlugin,
  PLUGIN_DIR,
  PLUGIN_NAME,
  PRODUCTION_HOST,
  send,
  useBed,
} from "../support/harness";

const LISTEN = "MODEL_BASED_ROUND_ROBIN_STATUS_LISTEN";
const SECRET = "Bearer sk-status-test-0123456789";
const HELLO = { model: "gpt-4o", messages: [{ role: "user", content: "Hello" }] };
const BILLING = {
  error: {
    message: "You exceeded your current quota.",
    type: "insufficient_quota",
    param: null,
    code: "insufficient_quota",
  },
};
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

const statusUrl = (kong: KongDouble) => statusListenerUrl(kong, 2000);

async function get(url: string) {
  const res = await request(url);
  const text = await res.body.text();
  return { status: res.statusCode, type: String(res.headers["content-type"]), text };
}

/** One GET on a connection of its own: the answer, or how the connection ended without one. */
function rawGet(
  hostname: string,
  port: number,
  path: string,
): Promise<{ path: string; status: number; text: string; error?: string }> {
  return new Promise((resolve) => {
    const req = httpGet({ hostname, port, path, agent: false }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk) => {
        text += chunk;
      });
      res.on("end", () => resolve({ path, status: res.statusCode ?? 0, text }));
      res.on("error", (e: NodeJS.ErrnoException) =>
        resolve({ path, status: 0, text, error: e.code ?? e.message }),
      );
    });
    req.on("error", (e: NodeJS.ErrnoException) =>
      resolve({ path, status: 0, text: "", error: e.code ?? e.message }),
    );
  });
}

/** The value of the Prometheus sample with this name and (at least) these labels. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    return Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return undefined;
}

describe("GET /status and GET /metrics on the plugin server", () => {
  let bed: Bed;
  let a: MockProvider;
  let b: MockProvider;

  useBed(
    {
      providers: 2,
      kongOptions: {
        pluginServers: [
          // Run outside Kong (as the image does): a Kong-managed server would not see the variable.
          {
            name: PLUGIN_NAME,
            pluginsDirectory: PLUGIN_DIR,
            supervised: true,
            env: { [LISTEN]: "127.0.0.1:0" },
          },
        ],
      },
    },
    (started) => {
      bed = started;
      [a, b] = started.providers as [MockProvider, MockProvider];
    },
  );

  it("names each plugin by its service and route (ids where Kong has no name), read once per instance", async () => {
    const onService = randomUUID();
    const onRoute = randomUUID();
    const unnamedService = randomUUID();
    const config = (model: string) => ({ production_models: [{ model, endpoint: a.url }] });
    await bed.kong.loadConfig({
      _format_version: "3.0",
      services: [
        {
          name: "llm",
          url: "http://placeholder.invalid:9/v1",
          routes: [{ name: "chat", paths: ["/openai/v1"], strip_path: true }],
          plugins: [{ id: onService, name: PLUGIN_NAME, config: config("m1") }],
        },
        {
          id: unnamedService,
          url: "http://placeholder.invalid:9/v1",
          routes: [
            {
              name: "second",
              paths: ["/second/v1"],
              strip_path: true,
              plugins: [{ id: onRoute, name: PLUGIN_NAME, config: config("m2") }],
            },
          ],
        },
      ],
    });
    const post = (path: string) =>
      request(`${bed.kong.proxyUrl}${path}/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(HELLO),
      });
    for (const path of ["/openai/v1", "/second/v1", "/second/v1"]) {
      const res = await post(path);
      await res.body.text();
      expect(res.statusCode).toBe(200);
    }
    const base = await statusUrl(bed.kong);
    const report = JSON.parse((await get(`${base}/status`)).text);
    expect(report.plugins[onService]).toMatchObject({ service: "llm" });
    expect(report.plugins[onService].route).toBeUndefined();
    expect(report.plugins[onRoute]).toMatchObject({ service: unnamedService, route: "second" });
    const metrics = (await get(`${base}/metrics`)).text;
    expect(
      sample(metrics, "model_based_round_robin_plugin_info", { plugin_id: onRoute, service: unnamedService }),
    ).toBe(1);
    expect(
      sample(metrics, "model_based_round_robin_plugin_info", {
        plugin_id: onService,
        service: "llm",
        route: "",
      }),
    ).toBe(1);
    // The route's name: one kong.router.get_route per instance, not per request.
    expect(bed.kong.pdkCalls.byPhase("access")["kong.router.get_route"]).toBe(1);
  });

  it("shows picks, a 429 suspension with its reason and signal, the all-suspended answer and refusals, and no key", async () => {
    const id = await loadPlugin(bed.kong, {
      ...DIRECT,
      production_models: [
        {
          model: "m1",
          endpoint: `${a.url}/v1`,
          auth_header_name: "Authorization",
          auth_header_value: SECRET,
        },
        { model: "m2", endpoint: b.url, weight: 1 },
      ],
      sandbox_models: [{ model: "s1", endpoint: b.url }],
      sandbox_hosts: ["sandbox.example.test"],
    });
    for (let i = 0; i < 4; i++) expect((await chat(bed.kong, HELLO)).status).toBe(200);
    a.failNext({ status: 429, headers: { "retry-after-ms": "30000" } });
    b.failNext({ status: 429 }); // no hint: on_quota_exceed_suspend_duration (60 s)
    expect((await chat(bed.kong, HELLO)).status).toBe(429);
    expect((await chat(bed.kong, HELLO)).status).toBe(429);
    await bed.kong.settled();
    const allOut = await chat(bed.kong, HELLO);
    expect(allOut.status).toBe(503);
    expect((await send(bed.kong, { body: "{" })).status).toBe(400);

    const base = await statusUrl(bed.kong);
    const status = await get(`${base}/status`);
    expect(status.status).toBe(200);
    expect(status.type).toBe("application/json");
    const report = JSON.parse(status.text);
    const plugin = report.plugins[id];
    expect(plugin.policy).toBe("local");
    expect(plugin.refusals).toEqual({ all_models_suspended: 1, invalid_body: 1 });
    expect(plugin.production.all_suspended).toBe(true);
    expect(plugin.production.all_suspended_answers).toBe(1);
    const [m1, m2] = plugin.production.entries;
    expect(m1).toMatchObject({
      model: "m1",
      endpoint: `${a.url}/v1`,
      auth_header_name: "Authorization",
      weight: 1,
      picks: 3,
      suspensions: 1,
      suspended: true,
      reason: "HTTP 429, retry-after-ms: 30000",
      cause: "http_429",
      signal: "retry-after-ms",
    });
    // Remaining times shrink with whatever the machine takes between the 429 and the read: only upper bounds are
    // exact, the lower ones just tell the hint (30 s) from the default (60 s) and from the bench (1 h).
    expect(m1.ms_left).toBeGreaterThan(0);
    expect(m1.ms_left).toBeLessThanOrEqual(30_000);
    expect(Date.parse(m1.until) - Date.parse(report.now)).toBe(m1.ms_left);
    expect(m2).toMatchObject({
      model: "m2",
      endpoint: b.url,
      picks: 3,
      suspended: true,
      reason: "HTTP 429, no provider hint",
      cause: "http_429",
      signal: "default",
    });
    expect(m2.ms_left).toBeGreaterThan(30_000);
    expect(m2.ms_left).toBeLessThanOrEqual(60_000);
    expect(plugin.sandbox).toEqual({
      entries: [{ model: "s1", endpoint: b.url, weight: 1, picks: 0, suspensions: 0, suspended: false }],
      all_suspended: false,
      all_suspended_answers: 0,
      self_proxied_requests: 0,
      failovers: 0,
    });
    expect(status.text).not.toContain("sk-status-test");

    const metrics = await get(`${base}/metrics`);
    expect(metrics.status).toBe(200);
    expect(metrics.type).toMatch(/^text\/plain; version=0\.0\.4/);
    const m1Labels = { plugin_id: id, environment: "production", model: "m1", endpoint: `${a.url}/v1` };
    expect(sample(metrics.text, "model_based_round_robin_picks_total", m1Labels)).toBe(3);
    expect(
      sample(metrics.text, "model_based_round_robin_suspensions_total", {
        ...m1Labels,
        cause: "http_429",
        signal: "retry-after-ms",
      }),
    ).toBe(1);
    expect(
      sample(metrics.text, "model_based_round_robin_suspensions_total", { model: "m2", signal: "default" }),
    ).toBe(1);
    const remaining = sample(metrics.text, "model_based_round_robin_suspension_remaining_seconds", m1Labels);
    expect(remaining).toBeGreaterThan(0);
    expect(remaining).toBeLessThanOrEqual(30);
    const production = { plugin_id: id, environment: "production" };
    expect(sample(metrics.text, "model_based_round_robin_suspended_entries", production)).toBe(2);
    expect(sample(metrics.text, "model_based_round_robin_all_suspended_total", production)).toBe(1);
    const sandbox = { plugin_id: id, environment: "sandbox" };
    expect(sample(metrics.text, "model_based_round_robin_suspended_entries", sandbox)).toBe(0);
    for (const [reason, n] of [
      ["all_models_suspended", 1],
      ["invalid_body", 1],
    ] as const) {
      expect(sample(metrics.text, "model_based_round_robin_refusals_total", { plugin_id: id, reason })).toBe(
        n,
      );
    }
    expect(metrics.text).toContain("# TYPE model_based_round_robin_picks_total counter");
    expect(metrics.text).toContain("process_cpu_user_seconds_total");
    expect(metrics.text).not.toContain("sk-status-test");
  });

  it("says which signal set a billing bench and an unreachable bench", async () => {
    const closed = await startMockProvider({ name: "closed" });
    const deadUrl = closed.url;
    await closed.close(); // nothing listens there now: Kong's own 502
    const id = await loadPlugin(
      bed.kong,
      {
        ...DIRECT,
        production_models: [
          { model: "billed", endpoint: a.url },
          { model: "dead", endpoint: deadUrl },
        ],
        min_suspend_duration: 0,
      },
      { retries: 0, connect_timeout: 1000 },
    );
    a.failNext({ status: 429, body: BILLING, headers: { "retry-after-ms": "50" }, times: 2 });
    expect((await chat(bed.kong, HELLO)).status).toBe(429); // billed: a short suspension, then a probe
    expect((await chat(bed.kong, HELLO)).status).toBe(502); // dead: benched as unreachable
    await bed.kong.settled();
    await pause(100);
    expect((await chat(bed.kong, HELLO)).json.error.code).toBe("insufficient_quota"); // the probe: billing
    await bed.kong.settled();

    const report = JSON.parse((await get(`${await statusUrl(bed.kong)}/status`)).text);
    const [billed, dead] = report.plugins[id].production.entries;
    expect(billed).toMatchObject({
      suspended: true,
      reason: "HTTP 429 insufficient_quota: billing exhausted",
      cause: "insufficient_quota",
      signal: "insufficient_quota",
      suspensions: 2,
    });
    expect(billed.ms_left).toBeGreaterThan(60_000);
    expect(billed.ms_left).toBeLessThanOrEqual(3_600_000);
    expect(dead).toMatchObject({
      suspended: true,
      reason: "unreachable (1 in a row)",
      cause: "unreachable",
      signal: "unreachable",
    });
    expect(dead.ms_left).toBeLessThanOrEqual(5000);
  });

  it("answers 404 beside its two paths and 405 to anything but GET", async () => {
    await loadPlugin(bed.kong, {
      ...DIRECT,
      production_models: [{ model: "m1", endpoint: a.url }],
    });
    await chat(bed.kong, HELLO);
    const base = await statusUrl(bed.kong);
    expect((await get(`${base}/`)).status).toBe(404);
    const post = await request(`${base}/status`, { method: "POST", body: "{}" });
    await post.body.text();
    expect(post.statusCode).toBe(405);
    expect(post.headers.allow).toBe("GET, HEAD");
  });

  // Bounds, not speed (the throughput figure is npm run chaos's part 6): a flood of GETs is answered from a few
  // renderings at the listener's pace, the proxy answers throughout, and the plugin server lives on.
  it("bounds a flood of concurrent GETs: a few renderings shared, answered at its pace, the proxy unharmed", async () => {
    await loadPlugin(bed.kong, { production_models: [{ model: "m1", endpoint: a.url }] });
    expect((await chat(bed.kong, HELLO)).status).toBe(200);
    const base = await statusUrl(bed.kong);
    const pid = bed.kong.server(PLUGIN_NAME).pid;
    const { hostname, port } = new URL(base);
    const started = Date.now();
    const gets = Array.from({ length: 400 }, (_, i) =>
      rawGet(hostname, Number(port), i % 2 ? "/status" : "/metrics"),
    );
    const chats = Array.from({ length: 10 }, () => chat(bed.kong, HELLO));
    const outcomes = await Promise.all(gets);
    const seconds = (Date.now() - started) / 1000;
    expect((await Promise.all(chats)).map((r) => r.status)).toEqual(Array(10).fill(200));

    const kinds = new Set(outcomes.map((o) => (o.status === 200 ? "200" : `closed (${o.error})`)));
    expect(
      [...kinds].filter((k) => k !== "200" && !/^closed \((ECONNRESET|socket hang up|EPIPE)\)$/.test(k)),
    ).toEqual([]);
    const pages = outcomes.filter((o) => o.status === 200 && o.path === "/status");
    expect(pages.length).toBeGreaterThan(0);
    // Each rendering carries its instant: at most the budget's burst and refill over the flood's length.
    const renderings = new Set(pages.map((o) => JSON.parse(o.text).now)).size;
    expect(renderings).toBeLessThanOrEqual(RENDERS_PER_SECOND * (1 + Math.ceil(seconds)));
    expect(bed.kong.server(PLUGIN_NAME).pid).toBe(pid);
    expect(bed.kong.logs.some((l) => /external pluginserver .* terminated/.test(l.message))).toBe(false);
  });

  // The pace itself is a unit test's (spec/unit/status-answer-pace.test.ts, on a clock of its own): here, that
  // requests past the burst are held and answered, not closed.
  it("past its burst, requests wait their turn on their connection: all answered, none closed", async () => {
    await loadPlugin(bed.kong, { production_models: [{ model: "m1", endpoint: a.url }] });
    await chat(bed.kong, HELLO);
    const { hostname, port } = new URL(await statusUrl(bed.kong));
    const count = ANSWER_BURST + ANSWERS_PER_SECOND / 2;
    const outcomes = await Promise.all(
      Array.from({ length: count }, () => rawGet(hostname, Number(port), "/status")),
    );
    expect(outcomes.map((o) => o.status)).toEqual(Array(count).fill(200));
  });

  it("holds at most MAX_CONNECTIONS connections: the ones past it are closed by the listener", async () => {
    await loadPlugin(bed.kong, { production_models: [{ model: "m1", endpoint: a.url }] });
    await chat(bed.kong, HELLO);
    const { hostname, port } = new URL(await statusUrl(bed.kong));
    // Connections that send nothing: each holds its place until the listener's idle timeout. Connections left
    // by earlier tests can only take places, so more are closed at the door, never fewer.
    const held = async () => {
      const socket = connect(Number(port), hostname);
      const outcome = { closed: false, socket };
      socket.on("error", () => undefined);
      socket.on("close", () => {
        outcome.closed = true;
      });
      await new Promise((r) => socket.once("connect", r));
      return outcome;
    };
    const outcomes = await Promise.all(Array.from({ length: MAX_CONNECTIONS + 8 }, held));
    try {
      await vi.waitFor(() => expect(outcomes.filter((o) => o.closed).length).toBeGreaterThanOrEqual(8), {
        timeout: 4_000,
      });
    } finally {
      for (const { socket } of outcomes) socket.destroy();
    }
    await vi.waitFor(async () => expect((await rawGet(hostname, Number(port), "/status")).status).toBe(200));
  });

  it("answers 404 to the operator actions while no operator token is configured, token or not", async () => {
    const id = await loadPlugin(bed.kong, { production_models: [{ model: "m1", endpoint: a.url }] });
    await chat(bed.kong, HELLO);
    const base = await statusUrl(bed.kong);
    for (const path of ["/actions/lift", "/actions/drain"]) {
      for (const authorization of [undefined, "Bearer anything"]) {
        const res = await request(`${base}${path}`, {
          method: "POST",
          headers: authorization === undefined ? {} : { authorization },
          body: JSON.stringify({ plugin_id: id, seconds: 60 }),
        });
        const body = (await res.body.json()) as { message: string };
        expect(res.statusCode).toBe(404);
        expect(body.message).toMatch(/MODEL_BASED_ROUND_ROBIN_OPERATOR_TOKEN/);
      }
    }
  });
});

describe("the status listener's address", () => {
  let kong: KongDouble | undefined;
  let provider: MockProvider | undefined;
  let child: ChildProcess | undefined;
  let blocker: Server | undefined;

  afterEach(async () => {
    await stopChild(child);
    await kong?.stop();
    await provider?.close();
    await new Promise((r) => (blocker === undefined ? r(undefined) : blocker.close(r)));
    blocker = undefined;
  });

  /**
   * The project's plugin server run outside the double (as the image's supervisor runs it), its stdout and stderr
   * kept apart, with the listener's variable set to `listen`; one request starts the plugin's first instance.
   */
  async function serverWith(listen: string) {
    provider = await startMockProvider({ name: "p" });
    kong = await KongDouble.start({
      pluginServers: [{ name: PLUGIN_NAME, pluginsDirectory: PLUGIN_DIR, external: true }],
    });
    const settings = kong.server(PLUGIN_NAME).settings;
    const [bin, ...args] = startArgv(settings);
    const out = { stdout: "", stderr: "" };
    child = spawn(process.execPath, [bin as string, ...args], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, [LISTEN]: listen },
    });
    child.stdout?.on("data", (d: Buffer) => {
      out.stdout += d.toString("utf8");
    });
    child.stderr?.on("data", (d: Buffer) => {
      out.stderr += d.toString("utf8");
    });
    while (!(await accepts(socketPath(settings)))) await pause(20);
    await loadPlugin(kong, {
      ...DIRECT,
      production_models: [{ model: "m1", endpoint: provider.url }],
    });
    const first = await chat(kong, HELLO, { host: PRODUCTION_HOST });
    for (let i = 0; i < 50 && !out.stderr.includes("status listener"); i++) await pause(20);
    return { out, first };
  }

  it("reports a malformed value on stderr, nothing on stdout, and the plugin server goes on serving", async () => {
    const { out, first } = await serverWith("localhost-9542");
    expect(first.status).toBe(200);
    expect(out.stderr).toContain(
      `${LISTEN}="localhost-9542": expected host:port, for example 127.0.0.1:9542 or [::1]:9542; the status listener is off`,
    );
    expect(out.stdout).toBe("");
    expect(child?.exitCode).toBeNull();
    expect((await chat(kong as KongDouble, HELLO)).status).toBe(200);
  });

  it("reports a port in use on stderr, nothing on stdout, and the plugin server goes on serving", async () => {
    const taken = createServer();
    blocker = taken;
    const port = await new Promise<number>((r) =>
      taken.listen(0, "127.0.0.1", () => r((taken.address() as { port: number }).port)),
    );
    const { out, first } = await serverWith(`127.0.0.1:${port}`);
    expect(first.status).toBe(200);
    expect(out.stderr).toMatch(
      new RegExp(
        `status listener: could not listen on 127\\.0\\.0\\.1:${port} \\(EADDRINUSE: .*\\); the listener is off`,
      ),
    );
    expect(out.stdout).toBe("");
    expect(child?.exitCode).toBeNull();
    expect((await chat(kong as KongDouble, HELLO)).status).toBe(200);
  });

  it("is not started by the query command, which prints its JSON alone", async () => {
    const { out } = await serverWith("127.0.0.1:0");
    const base = /status listener on (http:\/\/\S+):/.exec(out.stderr)?.[1];
    expect(base).toBeDefined();
    // The query command loads the plugin while the server runs: it must not take the port or print anything else.
    const [bin] = startArgv((kong as KongDouble).server(PLUGIN_NAME).settings);
    const port = Number(new URL(base as string).port);
    const query = spawn(
      process.execPath,
      [bin as string, "--plugins-directory", PLUGIN_DIR, "--dump-all-plugins"],
      { env: { ...process.env, [LISTEN]: `127.0.0.1:${port}` }, stdio: ["ignore", "pipe", "pipe"] },
    );
    let stdout = "";
    let stderr = "";
    query.stdout.on("data", (d: Buffer) => {
      stdout += d.toString("utf8");
    });
    query.stderr.on("data", (d: Buffer) => {
      stderr += d.toString("utf8");
    });
    const code = await new Promise((r) => query.once("exit", r));
    expect(code).toBe(0);
    expect(JSON.parse(stdout)[0].Name).toBe(PLUGIN_NAME);
    expect(stderr).not.toContain("status listener");
    expect((await get(`${base}/status`)).status).toBe(200);
  });
});

describe("under kong-pdk's stock kong-js-pluginserver", () => {
  let bed: Bed;
  useBed(
    {
      providers: 1,
      kongOptions: {
        pluginServers: [
          {
            name: PLUGIN_NAME,
            pluginsDirectory: PLUGIN_DIR,
            serverBin: stockServerBin(),
            supervised: true,
            env: { [LISTEN]: "127.0.0.1:0" },
          },
        ],
      },
    },
    (started) => {
      bed = started;
    },
  );

  it("serves /status and /metrics the same way", async () => {
    const [provider] = bed.providers as [MockProvider];
    const id = await loadPlugin(bed.kong, {
      ...DIRECT,
      production_models: [{ model: "m1", endpoint: provider.url }],
    });
    expect((await chat(bed.kong, HELLO)).status).toBe(200);
    const base = await statusUrl(bed.kong);
    const report = JSON.parse((await get(`${base}/status`)).text);
    expect(report.plugins[id].production.entries[0]).toMatchObject({
      model: "m1",
      picks: 1,
      suspended: false,
    });
    const metrics = (await get(`${base}/metrics`)).text;
    expect(sample(metrics, "model_based_round_robin_picks_total", { plugin_id: id, model: "m1" })).toBe(1);
  });
});
