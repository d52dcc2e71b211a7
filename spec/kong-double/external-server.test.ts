/**
 * Who runs the plugin server. Kong 3.9 starts and respawns it from worker 0 when it has a start command, and
 * then (3.9.1-3.9.3) its Admin API `GET /` fails: the process handle sits in kong.configuration, which `GET /`
 * serialises. Without a start command Kong only connects to the socket; whoever runs the server restarts it.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { request } from "undici";
import { afterEach, describe, expect, it } from "vitest";
import { accepts, KongDouble } from "../../kong-double";
import { socketPath, startArgv } from "../../kong-double/pluginserver-settings";
import { type MockProvider, startMockProvider } from "../../scripts/mock-provider";
import { probeService, stopChild } from "../support/double-tests";

const PROBE = resolve(process.cwd(), "spec/fixtures/plugins/probe");

describe("a plugin server managed by Kong, or run outside it", () => {
  let kong: KongDouble | undefined;
  let upstream: MockProvider | undefined;
  let child: ChildProcess | undefined;

  afterEach(async () => {
    await stopChild(child);
    await kong?.stop();
    await upstream?.close();
  });

  async function start(external: boolean): Promise<KongDouble> {
    upstream = await startMockProvider({ name: "upstream" });
    kong = await KongDouble.start({
      pluginServers: [{ name: "probe", pluginsDirectory: PROBE, external }],
    });
    await kong.loadConfig(probeService(upstream.url));
    return kong;
  }

  const get = async (url: string) => {
    const res = await request(url, { headers: { "x-probe": "encodings" } });
    const text = await res.body.text();
    return { status: res.statusCode, text };
  };

  /** Starts the server as an outside supervisor would: the same command Kong's start_cmd would run. */
  async function runServer(k: KongDouble): Promise<ChildProcess> {
    const settings = k.server("probe").settings;
    const [bin, ...args] = startArgv(settings);
    const proc = spawn(process.execPath, [bin as string, ...args], { stdio: "ignore" });
    const deadline = Date.now() + 15_000;
    while (!(await accepts(socketPath(settings)))) {
      if (Date.now() > deadline) throw new Error("the plugin server did not listen");
      await new Promise((r) => setTimeout(r, 25));
    }
    return proc;
  }

  it("managed: GET / answers Kong 3.9.1-3.9.3's 500, GET /status and the proxy work", async () => {
    const k = await start(false);
    const root = await request(`${k.adminUrl}/`);
    expect(root.statusCode).toBe(500);
    expect(await root.body.json()).toEqual({ message: "An unexpected error occurred" });
    const status = await request(`${k.adminUrl}/status`);
    expect(status.statusCode).toBe(200);
    expect(await status.body.json()).toMatchObject({ configuration_hash: expect.any(String) });
    expect(k.server("probe").pid).toBeDefined();
    expect((await get(`${k.proxyUrl}/probe/x`)).text).toContain("bodyIsBuffer");
  });

  it("external: GET / answers 200; the double neither starts nor respawns the server, only connects to it", async () => {
    const k = await start(true);
    const root = await request(`${k.adminUrl}/`);
    expect(root.statusCode).toBe(200);
    expect(await root.body.json()).toMatchObject({ configuration: { database: "off" } });
    const server = k.server("probe");
    expect(server.pid).toBeUndefined();
    expect(existsSync(socketPath(server.settings))).toBe(false);

    // Nothing listens yet: StartInstance fails and Kong answers 500.
    expect((await get(`${k.proxyUrl}/probe/x`)).status).toBe(500);

    child = await runServer(k);
    expect((await get(`${k.proxyUrl}/probe/x`)).text).toContain("bodyIsBuffer");

    // It dies: the double does not bring it back (a worker that had an instance proxies without the plugin).
    const exited = new Promise((r) => child?.once("exit", r));
    child.kill("SIGKILL");
    await exited;
    await new Promise((r) => setTimeout(r, 1200));
    expect(server.pid).toBeUndefined();
    expect(k.logs.some((l) => /terminated/.test(l.message))).toBe(false);
    expect((await get(`${k.proxyUrl}/probe/x`)).text).not.toContain("bodyIsBuffer");

    // The outside supervisor restarts it; Kong's stale instance id is answered "no plugin instance" and renewed.
    child = await runServer(k);
    expect((await get(`${k.proxyUrl}/probe/x`)).text).toContain("bodyIsBuffer");
    expect((await request(`${k.adminUrl}/`)).statusCode).toBe(200);
  });
});
