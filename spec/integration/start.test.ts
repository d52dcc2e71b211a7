/**
 * `npm start`: the local gateway runs until Ctrl-C, on docker-compose's ports by default (here on free ports),
 * says it is the test double, serves the README's requests, and stops cleanly, leaving no temporary directory.
 * Its plugin server runs unmanaged as in the image (Admin GET / answers 200; killed, it is started again).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { request } from "undici";
import { afterEach, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { COMPOSE_PORTS } from "../../scripts/lib/local-gateway";

const START = resolve("dist/scripts/start.js");
const FREE_PORTS = [
  ...["--proxy-port", "--admin-port", "--backend-1-port", "--backend-2-port"].flatMap((f) => [f, "0"]),
  ...["--status-listen", "127.0.0.1:0"],
];

interface Running {
  child: ChildProcess;
  output(): string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function start(args: string[]): Running {
  const child = spawn(process.execPath, [START, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout?.on("data", (d: Buffer) => {
    out += d.toString("utf8");
  });
  child.stderr?.on("data", (d: Buffer) => {
    out += d.toString("utf8");
  });
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.once("exit", (code, signal) => r({ code, signal })),
  );
  return { child, output: () => out, exit };
}

async function waitFor(running: Running, pattern: RegExp, ms = 20_000): Promise<RegExpExecArray> {
  const deadline = Date.now() + ms;
  for (;;) {
    const found = pattern.exec(running.output());
    if (found !== null) return found;
    if (Date.now() > deadline || running.child.exitCode !== null) {
      throw new Error(`no ${pattern} in:\n${running.output()}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function post(url: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await request(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  return { status: res.statusCode, json: (await res.body.json()) as { model?: string } };
}

describe("npm start", () => {
  let running: Running | undefined;

  afterEach(async () => {
    if (running !== undefined && running.child.exitCode === null && running.child.signalCode === null) {
      running.child.kill("SIGKILL");
      await running.exit;
    }
    running = undefined;
  });

  it("defaults to the ports docker-compose.yml publishes", () => {
    const compose = parse(readFileSync("docker-compose.yml", "utf8")) as {
      services: Record<string, { ports?: string[] }>;
    };
    const published = (service: string) =>
      compose.services[service]?.ports?.map((p) => Number(p.split(":")[0]));
    expect(published("kong")).toEqual([COMPOSE_PORTS.proxy, COMPOSE_PORTS.admin]);
    expect(published("chat-backend-1")).toEqual([COMPOSE_PORTS["chat-backend-1"]]);
    expect(published("chat-backend-2")).toEqual([COMPOSE_PORTS["chat-backend-2"]]);
  });

  it("serves the README's example until SIGINT, says it is the test double, then closes everything and exits 0", async () => {
    running = start(FREE_PORTS);
    const proxy = (await waitFor(running, /proxy +(http:\/\/\S+)/))[1] as string;
    const admin = (await waitFor(running, /Admin API +(http:\/\/\S+)/))[1] as string;
    const backend1 = (await waitFor(running, /chat-backend-1 +(http:\/\/\S+)/))[1] as string;
    await waitFor(running, /ready; Ctrl-C stops it/);
    expect(running.output()).toContain("Kong TEST DOUBLE (kong-double), not Kong");

    const chat = `${proxy}/chat-service-prod-sand/1.0/chat/completions`;
    const models = [];
    for (let i = 0; i < 3; i++)
      models.push((await post(chat, { model: "gpt-4.5", input: "Hello" })).json.model);
    expect(models).toEqual(["gpt-4o", "gpt-3.5", "gpt-4.5"]);
    const sandbox = await post(chat, { model: "gpt-4.5" }, { host: "default.sandbox.gw.wso2.com" });
    expect(sandbox.json.model).toBe("gpt-4o");
    // The mock's control API, as the README's curl drives chat-backend-1 on :9001.
    expect((await post(`${backend1}/__mock/fail`, { status: 429, model: "gpt-4o" })).status).toBe(200);
    const services = await request(`${admin}/services`);
    expect(((await services.body.json()) as { data: unknown[] }).data).toHaveLength(2);
    const status = (await waitFor(running, /status listener on (http:\/\/\S+):/))[1] as string;
    expect((await request(`${status}/status`)).statusCode).toBe(200);

    running.child.kill("SIGINT");
    expect(await running.exit).toEqual({ code: 0, signal: null });
    expect(running.output()).toContain("SIGINT: stopping");
    expect(running.output()).toMatch(/stopped\n$/);
    await expect(request(chat, { method: "POST", body: "{}" })).rejects.toThrow(/ECONNREFUSED/);
    await expect(request(`${backend1}/__mock/requests`)).rejects.toThrow(/ECONNREFUSED/);
  });

  it("prints its flags with --help (npm start -- --help) and exits 0", async () => {
    running = start(["--help"]);
    expect(await running.exit).toEqual({ code: 0, signal: null });
    for (const flag of [
      "--proxy-port",
      "--admin-port",
      "--backend-1-port",
      "--backend-2-port",
      "--status-listen",
      "--host",
    ])
      expect(running.output()).toContain(flag);
    expect(running.output()).toContain("npm start -- [flags]");
    // npm appends what follows `--` to the script's last command: the flags reach start.js.
    const pkg = JSON.parse(readFileSync("package.json", "utf8")) as { scripts: Record<string, string> };
    expect(pkg.scripts.start).toMatch(/node dist\/scripts\/start\.js$/);
  });

  it("refuses an unknown flag with exit 2, pointing at --help", async () => {
    running = start(["--proxy", "8000"]);
    expect((await running.exit).code).toBe(2);
    expect(running.output()).toContain("Unknown option '--proxy'");
    expect(running.output()).toContain("npm start -- --help lists the flags");
    expect(running.output()).not.toContain("another gateway");
  });

  it("runs the plugin server unmanaged as the image does: GET / answers 200, a killed server is started again, and its temporary directory is removed at the end", async () => {
    running = start(FREE_PORTS);
    const proxy = (await waitFor(running, /proxy +(http:\/\/\S+)/))[1] as string;
    const admin = (await waitFor(running, /Admin API +(http:\/\/\S+)/))[1] as string;
    const socket = (await waitFor(running, /plugin server +(\/\S+\.sock)/))[1] as string;
    await waitFor(running, /ready; Ctrl-C stops it/);
    const root = await request(`${admin}/`);
    expect(root.statusCode).toBe(200);
    expect(await root.body.json()).toMatchObject({ configuration: { database: "off" } });

    const chat = `${proxy}/chat-service-prod-sand/1.0/chat/completions`;
    expect((await post(chat, { model: "x" })).status).toBe(200);
    const pid = Number((await waitFor(running, /started the plugin server, pid (\d+)/))[1]);
    process.kill(pid, "SIGKILL");
    await waitFor(running, new RegExp(`pid ${pid}\\) exited with SIGKILL; restarting in 1 s`));
    const again = Number(
      (
        await waitFor(
          running,
          /started the plugin server, pid (\d+)[\s\S]*started the plugin server, pid (\d+)/,
        )
      )[2],
    );
    expect(again).not.toBe(pid);
    // Until the new server listens, Kong's answer is one of its fail-closed ones; then the plugin routes again.
    let status = 0;
    for (let i = 0; i < 200 && status !== 200; i++) {
      status = (await post(chat, { model: "x" }).catch(() => ({ status: -1 }))).status;
      expect([200, 500, 503, -1]).toContain(status);
      if (status !== 200) await new Promise((r) => setTimeout(r, 50));
    }
    expect(status).toBe(200);

    expect(existsSync(dirname(socket))).toBe(true);
    running.child.kill("SIGINT");
    expect(await running.exit).toEqual({ code: 0, signal: null });
    expect(existsSync(dirname(socket))).toBe(false);
  });

  it("stops the same on SIGTERM", async () => {
    running = start(FREE_PORTS);
    await waitFor(running, /ready; Ctrl-C stops it/);
    running.child.kill("SIGTERM");
    expect(await running.exit).toEqual({ code: 0, signal: null });
  });

  it("says which port is in use, and exits 1", async () => {
    const first = start(FREE_PORTS);
    try {
      const proxy = (await waitFor(first, /proxy +(http:\/\/\S+)/))[1] as string;
      const port = new URL(proxy).port;
      running = start([...FREE_PORTS, "--proxy-port", port]);
      expect((await running.exit).code).toBe(1);
      expect(running.output()).toContain(
        `the proxy could not listen on 127.0.0.1:${port}: the port is in use`,
      );
    } finally {
      first.child.kill("SIGINT");
      await first.exit;
    }
  });
});
