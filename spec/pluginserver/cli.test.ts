/**
 * The project's plugin server binary as Kong runs its query command (stdout only, decoded as JSON) and its
 * command line, which takes kong-js-pluginserver's flags.
 */
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stockServerBin } from "../../kong-double";
import { parseCli } from "../../pluginserver/cli";

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
