/**
 * Every command the project ships or documents answers a wrong argument with a line naming it and a non-zero
 * exit, never a stack trace (issue 15: "no command ends in a stack trace").
 */
import { spawnSync } from "node:child_process";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";

const run = (script: string, args: string[]) =>
  spawnSync(process.execPath, [resolve(script), ...args], { encoding: "utf8", timeout: 30_000 });

describe("a wrong argument", () => {
  it.each([
    ["apk-conf-to-kong", "dist/converter/apk-conf-to-kong.js", 2],
    ["bench", "dist/scripts/bench.js", 2],
    ["bench-refusals", "dist/scripts/bench-refusals.js", 2],
    ["bench-listener", "dist/scripts/bench-listener.js", 2],
    ["chaos", "dist/scripts/chaos.js", 2],
    ["mock-provider", "dist/scripts/mock-provider/cli.js", 2],
    ["model-based-round-robin-pluginserver", "dist/pluginserver/main.js", 1],
  ])("%s: names the option, exits %i, no stack trace", (name, script, code) => {
    const r = run(script, ["--no-such-option"]);
    expect(r.status).toBe(code);
    expect(r.stderr).toMatch(/Unknown option '--no-such-option'/);
    expect(r.stderr).not.toMatch(/\n\s+at |Node\.js v\d/);
    if (name !== "model-based-round-robin-pluginserver") expect(r.stderr.split("\n")[0]).toMatch(`${name}: `);
  });
});
