/**
 * What Kong does to its plugin servers beyond one request: `kong reload` (new workers, a managed server started
 * anew, an unmanaged one left alone, DB-less configuration re-read from the declarative file), the environment
 * a managed server gets (only PWD), and how long Kong waits for a reply (`lua_socket_read_timeout`).
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { request } from "undici";
import { afterEach, describe, expect, it } from "vitest";
import { KongDouble, type KongDoubleOptions } from "../../kong-double";
import { type MockProvider, startMockProvider } from "../../scripts/mock-provider";
import { probeService } from "../support/double-tests";

const PROBE = resolve(process.cwd(), "spec/fixtures/plugins/probe");

describe("the plugin server's life around Kong", () => {
  let kong: KongDouble | undefined;
  let upstream: MockProvider | undefined;

  afterEach(async () => {
    await kong?.stop();
    await upstream?.close();
    kong = undefined;
  });

  async function start(
    launch: { supervised?: boolean; env?: Record<string, string> } = {},
    options: Partial<KongDoubleOptions> = {},
  ): Promise<KongDouble> {
    upstream = await startMockProvider({ name: "upstream" });
    kong = await KongDouble.start({
      pluginServers: [{ name: "probe", pluginsDirectory: PROBE, ...launch }],
      config: probeService(upstream.url),
      ...options,
    });
    return kong;
  }

  async function probe(k: KongDouble, what: string, headers: Record<string, string> = {}, path = "/probe") {
    const res = await request(`${k.proxyUrl}${path}`, { headers: { "x-probe": what, ...headers } });
    const text = await res.body.text();
    let json: { pid?: number; env?: string[] } | undefined;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: res.statusCode, text, json };
  }

  /** Whether process `pid` still exists. */
  function alive(pid: number): boolean {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  }

  async function until(check: () => boolean, what: string): Promise<void> {
    for (let i = 0; i < 1500 && !check(); i++) await new Promise((r) => setTimeout(r, 20));
    if (!check()) throw new Error(`never happened: ${what}`);
  }

  it("starts a Kong-managed server with only PWD in its environment, and refuses env for it", async () => {
    process.env.KONG_DOUBLE_TEST_MARKER = "set in Kong's environment";
    try {
      const k = await start();
      const reply = await probe(k, "process");
      // The project's server sets its state file's variable itself (pluginserver/main.ts); nothing else is there.
      expect(reply.json?.env?.filter((name) => name !== "MODEL_BASED_ROUND_ROBIN_STATE_FILE")).toEqual([
        "PWD",
      ]);
    } finally {
      delete process.env.KONG_DOUBLE_TEST_MARKER;
    }
    await expect(
      KongDouble.start({ pluginServers: [{ name: "probe", pluginsDirectory: PROBE, env: { A: "1" } }] }),
    ).rejects.toThrow(/only PWD in its environment.*flags \(args\).*supervised/);
  });

  it("gives a server run outside Kong (supervised) the environment it was given", async () => {
    const k = await start({ supervised: true, env: { PROBE_SETTING: "x" } });
    const reply = await probe(k, "process");
    expect(reply.json?.env).toContain("PROBE_SETTING");
    expect(reply.json?.env).toContain("PATH");
    // Kong keeps no process handle: Admin GET / answers 200.
    expect((await request(`${k.adminUrl}/`)).statusCode).toBe(200);
  });

  it("kong reload, managed: a new server takes the socket while the old one finishes what it serves", async () => {
    const k = await start();
    const before = (await probe(k, "process")).json?.pid as number;
    expect(before).toBeGreaterThan(0);
    // A request whose plugin is still working when the reload comes (it waits for a file).
    const release = join(mkdtempSync(join(tmpdir(), "reload-")), "release");
    const held = probe(k, "slow", { "x-wait-file": release });
    await until(
      () => (k.pdkCalls.byPhase("access")["kong.request.get_header"] ?? 0) >= 4,
      "the held request waits",
    );
    await k.reload();
    const after = (await probe(k, "process")).json?.pid as number;
    expect(after).not.toBe(before);
    expect(alive(before)).toBe(true); // the old server still serves the held request
    writeFileSync(release, "");
    const heldReply = await held;
    expect([heldReply.status, heldReply.json?.pid]).toEqual([200, before]);
    // The old workers are done: the old server gets SIGTERM; the new one keeps serving.
    await until(() => !alive(before), "the old server exits");
    expect((await probe(k, "process")).json?.pid).toBe(after);
  });

  it("kong reload, unmanaged: the server process and its memory stay", async () => {
    const k = await start({ supervised: true });
    const before = (await probe(k, "process")).json?.pid;
    const instances = k.server("probe").started.length;
    await k.reload();
    expect((await probe(k, "process")).json?.pid).toBe(before);
    // New workers start their own instance of the plugin on the same server.
    expect(k.server("probe").started.length).toBe(instances + 1);
  });

  it("kong reload, DB-less: the declarative configuration comes back, what POST /config loaded is gone", async () => {
    const k = await start({ supervised: true });
    const posted = {
      _format_version: "3.0",
      services: [
        {
          name: "other",
          url: `${upstream?.url}/base`,
          routes: [{ name: "other", paths: ["/posted"] }],
          plugins: [{ name: "probe" }],
        },
      ],
    };
    const load = await request(`${k.adminUrl}/config`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ config: JSON.stringify(posted) }),
    });
    expect(load.statusCode).toBe(201);
    await load.body.text();
    expect((await probe(k, "process", {}, "/posted")).status).toBe(200);
    expect((await probe(k, "process")).status).toBe(404);
    await k.reload();
    expect((await probe(k, "process", {}, "/posted")).status).toBe(404);
    expect((await probe(k, "process")).status).toBe(200);
  });

  it("waits for a plugin-server reply as long as lua_socket_read_timeout says, then goes on without the plugin", async () => {
    // Configured short (as KONG_NGINX_HTTP_LUA_SOCKET_READ_TIMEOUT would): Kong gives up on the held event
    // and the request is proxied without the plugin (fail-open), so the upstream answers.
    const short = await start({}, { env: { KONG_NGINX_HTTP_LUA_SOCKET_READ_TIMEOUT: "200ms" } });
    const cut = await probe(short, "slow", { "x-sleep-ms": "3000" });
    expect(cut.json?.pid).toBeUndefined();
    expect(upstream?.requests.length).toBe(1);
    expect(short.logs.some((l) => /plugin server error in access: timeout/.test(l.message))).toBe(true);
    await short.stop();
    await upstream?.close();
    // The default, 60 s: the same plugin's answer arrives.
    const patient = await start();
    const answered = await probe(patient, "slow", { "x-sleep-ms": "500" });
    expect(answered.json?.pid).toBeGreaterThan(0);
    expect(upstream?.requests.length).toBe(0);
  });

  it("refuses a lua_socket_read_timeout that is no nginx time, naming it", async () => {
    await expect(KongDouble.start({ pluginServers: [], luaSocketReadTimeout: "sixty" })).rejects.toThrow(
      /lua_socket_read_timeout "sixty": "sixty" is not a time/,
    );
  });
});
