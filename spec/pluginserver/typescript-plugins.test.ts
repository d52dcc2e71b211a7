/**
 * kong-pdk registers ts-node when its server loads, and ts-node's REPL loads node:domain, which slows every
 * EventEmitter of the process. The project's plugin server registers it only for a directory that holds a
 * TypeScript plugin.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const root = process.cwd();
const BIN = resolve(root, "dist/pluginserver/main.js");

/** Runs node with a preload that reports, at exit, whether node:domain and ts-node were loaded. */
function runWatched(args: string[]) {
  const out = spawnSync(process.execPath, ["-r", WATCH, ...args], {
    encoding: "utf8",
    timeout: 30_000,
    cwd: tmpdir(),
  });
  const report = /watched (\{.*\})/.exec(out.stderr)?.[1];
  return { ...out, loaded: JSON.parse(report ?? "null") as { domain: boolean; tsNode: boolean } | null };
}

let dir: string;
let WATCH: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "pluginserver-ts-"));
  WATCH = join(dir, "watch.js");
  writeFileSync(
    WATCH,
    `process.on("exit", () => process.stderr.write("watched " + JSON.stringify({
      domain: process.moduleLoadList.includes("NativeModule domain"),
      // ts-node itself, not the stand-in the project's server puts in its place
      tsNode: Object.values(require.cache).some((m) => m && m.exports && typeof m.exports.VERSION === "string"
        && /[\\\\/]ts-node[\\\\/]/.test(m.id)),
    }) + "\\n"));\n`,
  );
  const plugins = join(dir, "plugins");
  mkdirSync(plugins);
  writeFileSync(
    join(plugins, "hello.ts"),
    [
      "export class Plugin {",
      "  private readonly greeting: string;",
      "  constructor(config: { greeting?: string }) {",
      '    this.greeting = config.greeting ?? "hello";',
      "  }",
      "}",
      'export const Schema = [{ greeting: { type: "string" } }];',
      'export const Version = "0.1.0";',
      "export const Priority = 0;",
      "",
    ].join("\n"),
  );
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("ts-node and node:domain in the plugin server", () => {
  it("kong-pdk's own server module loads both (what the project's server avoids)", () => {
    const out = runWatched(["-e", `require(${JSON.stringify(require.resolve("kong-pdk/server"))})`]);
    expect(out.loaded).toEqual({ domain: true, tsNode: true });
  });

  it("the query command on the built plugin loads neither", () => {
    const out = runWatched([BIN, "--dump-all-plugins", "-d", join(root, "dist/plugins")]);
    expect(out.status).toBe(0);
    expect(JSON.parse(out.stdout)).toEqual([expect.objectContaining({ Name: "model-based-round-robin" })]);
    expect(out.loaded).toEqual({ domain: false, tsNode: false });
  });

  it("a directory with a TypeScript plugin still loads it, through ts-node as kong-pdk does", () => {
    const out = runWatched([BIN, "--dump-all-plugins", "-d", join(dir, "plugins")]);
    expect(out.status).toBe(0);
    expect(JSON.parse(out.stdout)).toEqual([
      expect.objectContaining({ Name: "hello", Version: "0.1.0", Phases: [] }),
    ]);
    expect(out.loaded?.tsNode).toBe(true);
  });
});
