/**
 * The project's plugin server binary as Kong runs its query command (stdout only, decoded as JSON) and its
 * command line, which takes kong-js-pluginserver's flags.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { request } from "undici";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { accepts, KongDouble, stockServerBin } from "../../kong-double";
import { socketPath, startArgv } from "../../kong-double/pluginserver-settings";
import { STATE_FILE_ENV as PLUGIN_STATE_FILE_ENV } from "../../plugins/model-based-round-robin/persistence";
import { RELAY_LISTEN_ENV as PLUGIN_RELAY_LISTEN_ENV } from "../../plugins/model-based-round-robin/relay";
import { STATUS_LISTEN_ENV as PLUGIN_STATUS_LISTEN_ENV } from "../../plugins/model-based-round-robin/status/address";
import { parseCli } from "../../pluginserver/cli";
import {
  OPERATOR_TOKEN_ENV,
  PLUGIN_SETTINGS,
  RELAY_LISTEN_ENV,
  STATE_FILE_ENV,
  STATUS_LISTEN_ENV,
} from "../../pluginserver/settings";
import { type MockProvider, startMockProvider } from "../../scripts/mock-provider";
import { stopChild } from "../support/double-tests";
import { chat, loadPlugin, PLUGIN_DIR, PLUGIN_NAME } from "../support/harness";

const root = process.cwd();
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
  bin: Record<string, string>;
  dependencies: Record<string, string>;
};
const BIN = resolve(root, pkg.bin["model-based-round-robin-pluginserver"] as string);
const ESC = "\u001b";

const run = (bin: string, args: string[]) =>
  spawnSync(process.execPath, [bin, ...args], { encoding: "utf8", timeout: 30_000 });

describe("model-based-round-robin-pluginserver --dump-all-plugins", () => {
  let dir: string;
  beforeAll(() => {
    // One good plugin and one that fails to load: kong-pdk logs a warning about the second.
    dir = mkdtempSync(join(tmpdir(), "pluginserver-dump-"));
    copyFileSync(join(root, "spec/fixtures/plugins/noop/noop.js"), join(dir, "noop.js"));
    writeFileSync(join(dir, "broken.js"), "module.exports = {; // a syntax error\n");
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("is a bin of the package, compiled with a node shebang; kong-pdk is a runtime dependency", () => {
    expect(pkg.bin["model-based-round-robin-pluginserver"]).toBe("dist/pluginserver/main.js");
    expect(readFileSync(BIN, "utf8").startsWith("#!/usr/bin/env node\n")).toBe(true);
    expect(pkg.dependencies["kong-pdk"]).toBe("0.6.0");
  });

  it("prints pure JSON on stdout; the load warning goes to stderr, without escape codes", () => {
    const out = run(BIN, ["--plugins-directory", dir, "--dump-all-plugins"]);
    expect(out.status).toBe(0);
    expect(out.stdout).toBe(`${JSON.stringify(JSON.parse(out.stdout))}\n`);
    expect(JSON.parse(out.stdout)).toEqual([expect.objectContaining({ Name: "noop", Priority: 769 })]);
    expect(out.stderr).toMatch(/\[WARN\] error loading plugin "broken"/);
    expect(out.stderr).not.toContain(ESC);
  });

  it("where kong-pdk's own server puts the coloured warning on stdout, which Kong cannot decode", () => {
    const out = run(stockServerBin(), ["--plugins-directory", dir, "--dump-all-plugins"]);
    expect(out.stdout).toContain("error loading plugin");
    expect(out.stdout).toContain(ESC);
  });

  it("dumps the built plugin as Kong's query command, with the single-dash spellings too", () => {
    const dump = run(BIN, ["-plugins-directory", join(root, "dist/plugins"), "-dump-all-plugins"]);
    expect(dump.status).toBe(0);
    expect(JSON.parse(dump.stdout)).toEqual([
      expect.objectContaining({ Name: "model-based-round-robin", Phases: ["log", "access"] }),
    ]);
    expect(dump.stderr).toBe("");
  });

  it("fails with a message on stderr and nothing on stdout without a plugins directory", () => {
    const out = run(BIN, ["--dump-all-plugins"]);
    expect(out.status).toBe(1);
    expect(out.stdout).toBe("");
    expect(out.stderr).toMatch(/--plugins-directory/);
  });
});

describe("parseCli", () => {
  it("takes kong-js-pluginserver's flags and defaults", () => {
    expect(parseCli(["-d", "plugins", "-v"], {})).toEqual({
      kind: "run",
      options: {
        pluginsDirectory: resolve("plugins"),
        kongPrefix: "/usr/local/kong",
        sockName: "js_pluginserver.sock",
        verbose: 1,
        dumpAllPlugins: false,
        dumpPluginInfo: undefined,
        callTimeoutMs: 65_000,
        backlog: 4096,
        pluginEnv: {},
      },
    });
    const full = parseCli(
      ["--plugins-directory=/p", "-p", "/k", "--sock-name", "s.sock", "--dump-plugin-info", "x"],
      {},
    );
    expect(full).toMatchObject({
      options: { pluginsDirectory: "/p", kongPrefix: "/k", sockName: "s.sock", dumpPluginInfo: "x" },
    });
  });

  it("reads the PDK call bound from the flag, else the environment, and refuses nonsense", () => {
    const env = { PLUGINSERVER_PDK_CALL_TIMEOUT_MS: "500" };
    expect(parseCli(["-d", "/p"], env)).toMatchObject({ options: { callTimeoutMs: 500 } });
    expect(parseCli(["-d", "/p", "--pdk-call-timeout-ms", "70000"], env)).toMatchObject({
      options: { callTimeoutMs: 70_000 },
    });
    expect(parseCli(["-d", "/p", "--pdk-call-timeout-ms", "soon"], {})).toMatchObject({
      kind: "exit",
      code: 1,
    });
    expect(parseCli(["-d", "/p", "--no-such-flag"], {})).toMatchObject({ kind: "exit", code: 1 });
  });
});

describe("the plugin's settings as flags (a server Kong starts gets only PWD in its environment)", () => {
  const TOKEN = "op-token-6d1f0c-never-printed";

  it("names the variables the plugin reads", () => {
    expect(STATUS_LISTEN_ENV).toBe(PLUGIN_STATUS_LISTEN_ENV);
    expect(STATE_FILE_ENV).toBe(PLUGIN_STATE_FILE_ENV);
    expect(RELAY_LISTEN_ENV).toBe(PLUGIN_RELAY_LISTEN_ENV);
    expect(PLUGIN_SETTINGS.map((s) => [s.flag, s.env])).toEqual([
      ["status-listen", STATUS_LISTEN_ENV],
      ["state-file", STATE_FILE_ENV],
      ["operator-token", OPERATOR_TOKEN_ENV],
      ["relay-listen", RELAY_LISTEN_ENV],
    ]);
  });

  it("--help lists every flag with its variable", () => {
    const help = run(BIN, ["--help"]);
    expect(help.status).toBe(0);
    for (const s of PLUGIN_SETTINGS)
      expect(help.stdout).toMatch(new RegExp(`--${s.flag} [\\s\\S]*?\\(env ${s.env}\\)`));
    expect(help.stdout).toContain("--operator-token-file <path>");
    expect(help.stdout).toContain("--pdk-call-timeout-ms <ms>");
    expect(help.stdout).toContain("env PLUGINSERVER_PDK_CALL_TIMEOUT_MS)");
    expect(help.stdout).toMatch(
      /--listen-backlog <n> +the socket's accept queue \(default 4096; the kernel's\s+net\.core\.somaxconn caps it\)/,
    );
  });

  it("passes each flag given to the plugin's variable, the state file as an absolute path", () => {
    const parsed = parseCli(
      [
        "-d",
        "/p",
        "--status-listen",
        "127.0.0.1:9542",
        "--state-file",
        "state.json",
        "--operator-token",
        TOKEN,
        "--relay-listen=[::1]:0",
      ],
      {},
    );
    expect(parsed).toMatchObject({
      kind: "run",
      options: {
        pluginEnv: {
          [STATUS_LISTEN_ENV]: "127.0.0.1:9542",
          [STATE_FILE_ENV]: resolve("state.json"),
          [OPERATOR_TOKEN_ENV]: TOKEN,
          [RELAY_LISTEN_ENV]: "[::1]:0",
        },
      },
    });
    // An empty state file turns persistence off, as the variable does.
    expect(parseCli(["-d", "/p", "--state-file", ""], {})).toMatchObject({
      options: { pluginEnv: { [STATE_FILE_ENV]: "" } },
    });
  });

  it("reads the operator token from a file, and refuses an empty, unreadable or doubly given token without showing it", () => {
    const files: Record<string, string> = { "/run/token": `${TOKEN}\n`, "/run/empty": "\n" };
    const read = (path: string) => {
      const text = files[path];
      if (text === undefined) throw Object.assign(new Error("no"), { code: "ENOENT" });
      return text;
    };
    expect(parseCli(["-d", "/p", "--operator-token-file", "/run/token"], {}, read)).toMatchObject({
      options: { pluginEnv: { [OPERATOR_TOKEN_ENV]: TOKEN } },
    });
    const refusals = [
      [["--operator-token", ""], "error: --operator-token is empty\n"],
      [["--operator-token-file", "/run/empty"], "error: --operator-token-file '/run/empty' holds no token\n"],
      [
        ["--operator-token-file", "/run/none"],
        "error: cannot read --operator-token-file '/run/none': ENOENT\n",
      ],
      [
        ["--operator-token", TOKEN, "--operator-token-file", "/run/token"],
        "error: --operator-token and --operator-token-file both given: pick one\n",
      ],
    ] as const;
    for (const [args, message] of refusals) {
      expect(parseCli(["-d", "/p", ...args], {}, read)).toEqual({ kind: "exit", code: 1, message });
    }
    // The binary's own errors do not show it either.
    const out = run(BIN, ["-d", "/p", "--operator-token", TOKEN, "--no-such-flag"]);
    expect(out.status).toBe(1);
    expect(out.stderr).toMatch(/--no-such-flag/);
    expect(`${out.stdout}${out.stderr}`).not.toContain(TOKEN);
  });

  it("refuses a backlog that is not a positive whole number, naming the flag", () => {
    for (const bad of ["0", "-1", "1.5", "lots", ""]) {
      expect(parseCli(["-d", "/p", `--listen-backlog=${bad}`], {})).toMatchObject({
        kind: "exit",
        code: 1,
        message: expect.stringContaining(`invalid --listen-backlog '${bad}'`),
      });
    }
    expect(parseCli(["-d", "/p", "--listen-backlog", "8192"], {})).toMatchObject({
      options: { backlog: 8192 },
    });
  });

  describe("through the real server, started as Kong starts a managed one (its environment: PWD alone)", () => {
    let kong: KongDouble | undefined;
    let provider: MockProvider | undefined;
    let child: ChildProcess | undefined;
    afterEach(async () => {
      await stopChild(child);
      await kong?.stop();
      await provider?.close();
      kong = undefined;
      provider = undefined;
      child = undefined;
    });

    it("the plugin gets the flags' values, a flag winning over its variable; the token appears in no log line", async () => {
      provider = await startMockProvider({ name: "p" });
      kong = await KongDouble.start({
        pluginServers: [{ name: PLUGIN_NAME, pluginsDirectory: PLUGIN_DIR, external: true }],
      });
      const settings = kong.server(PLUGIN_NAME).settings;
      const [bin, ...args] = startArgv(settings);
      let stderr = "";
      let stdout = "";
      child = spawn(
        process.execPath,
        [bin as string, ...args, "-v", "--status-listen", "127.0.0.1:0", "--operator-token", TOKEN],
        // The variable says something else (malformed): the flag wins.
        {
          stdio: ["ignore", "pipe", "pipe"],
          env: { PWD: settings.kongPrefix, [STATUS_LISTEN_ENV]: "nowhere" },
        },
      );
      child.stdout?.on("data", (d: Buffer) => {
        stdout += d.toString();
      });
      child.stderr?.on("data", (d: Buffer) => {
        stderr += d.toString();
      });
      while (!(await accepts(socketPath(settings)))) await new Promise((r) => setTimeout(r, 20));
      await loadPlugin(kong, { production_models: [{ model: "m1", endpoint: provider.url }] });
      expect(
        (await chat(kong, { model: "gpt-4o", messages: [{ role: "user", content: "Hi" }] })).status,
      ).toBe(200);
      let url: string | undefined;
      for (let i = 0; i < 250 && url === undefined; i++) {
        url = /status listener on (http:\/\/\S+):/.exec(stderr)?.[1];
        if (url === undefined) await new Promise((r) => setTimeout(r, 20));
      }
      expect(url).toBeDefined();
      expect((await request(`${url}/status`)).statusCode).toBe(200);
      expect(stderr).not.toContain("the status listener is off");
      expect(`${stdout}${stderr}`).not.toContain(TOKEN);
    });
  });
});
