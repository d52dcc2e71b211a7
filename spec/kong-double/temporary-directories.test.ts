/**
 * The double's temporary directories (the plugin server's prefix: socket, state file): removed when the double
 * stops, and at start those of doubles whose process died (marked with its pid); any other directory is left
 * alone. TMPDIR points at a directory of this test's own (each test file runs in its own process).
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KongDouble } from "../../kong-double";

const PROBE = resolve(process.cwd(), "spec/fixtures/plugins/probe");

describe("the double's temporary directories", () => {
  const outerTmp = process.env.TMPDIR;
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "double-tmp-test-"));
    process.env.TMPDIR = dir;
    expect(tmpdir()).toBe(dir);
  });
  afterAll(() => {
    if (outerTmp === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = outerTmp;
    rmSync(dir, { recursive: true, force: true });
  });

  /** A pid that belonged to a process which has exited. */
  function deadPid(): number {
    const child = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"]);
    return Number(child.stdout.toString());
  }

  function leftover(name: string, pid?: number): string {
    const path = join(dir, name);
    mkdirSync(path);
    writeFileSync(join(path, "model-based-round-robin.state.json"), "{}");
    if (pid !== undefined) writeFileSync(join(path, "kong-double.pid"), `${pid}\n`);
    return path;
  }

  it("removes its own when it stops, and stale ones of its own at start, leaving the others", async () => {
    const stale = leftover("kong-double-stale1", deadPid());
    const live = leftover("kong-double-live11", process.pid);
    const unmarked = leftover("kong-double-nomark");
    const other = leftover("something-else", deadPid());

    const kong = await KongDouble.start({ pluginServers: [{ name: "probe", pluginsDirectory: PROBE }] });
    const prefix = kong.server("probe").settings.kongPrefix;
    expect(prefix.startsWith(join(dir, "kong-double-"))).toBe(true);
    expect(existsSync(stale)).toBe(false);
    expect([live, unmarked, other].map(existsSync)).toEqual([true, true, true]);

    await kong.stop();
    expect(existsSync(prefix)).toBe(false);
    // Node's own compile cache may sit beside them: only the double's directories are compared.
    const left = readdirSync(dir).filter(
      (name) => name.startsWith("kong-double-") || name === "something-else",
    );
    expect(left.sort()).toEqual(["kong-double-live11", "kong-double-nomark", "something-else"]);
  });
});
