import { execFile } from "node:child_process";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";

describe("npm run demo", () => {
  it("shows the 5:1:1 rotation, a 429 suspension and the all-suspended answer, numbers every request, says it is the test double, and exits 0", async () => {
    const { code, stdout } = await new Promise<{ code: number | null; stdout: string }>((done) => {
      const child = execFile(
        process.execPath,
        [resolve("dist/scripts/demo.js")],
        { timeout: 60_000 },
        (_e, out) => done({ code: child.exitCode, stdout: out }),
      );
    });
    expect(stdout).toContain("TEST DOUBLE, not Kong");
    expect(stdout).toContain("ok: the three models in rotation");
    expect(stdout).toContain("ok: the client never sees that 429");
    expect(stdout).toContain("ok: gpt-4o is skipped while suspended");
    expect(stdout).toContain("ok: 503 with Retry-After when every model is suspended");
    expect(stdout).not.toContain("NOT OK");
    expect(code).toBe(0);

    // Every request is numbered, in order, and the first 14 show two smooth cycles of 5:1:1.
    const numbered = [...stdout.matchAll(/^ {2}#\s*(\d+) (?:\[\S+\] )?(\d{3}) (.*)$/gm)];
    expect(numbered.map((m) => Number(m[1]))).toEqual(numbered.map((_, i) => i + 1));
    const cycle = ["gpt-4o", "gpt-4o", "gpt-3.5", "gpt-4o", "gpt-4.5", "gpt-4o", "gpt-4o"];
    expect(numbered.slice(0, 14).map((m) => /answered by (\S+)/.exec(m[3] as string)?.[1])).toEqual([
      ...cycle,
      ...cycle,
    ]);
    expect(Number(/demo finished: (\d+) requests, all as described/.exec(stdout)?.[1])).toBe(numbered.length);
    expect(stdout).toMatch(/#\d+ 503 from the plugin, retry-after=\d+, retry-after-ms=\d+/);
    // The plugin server's status listener says why each model is out.
    expect(stdout).toMatch(
      /gpt-4o at http:\/\/127\.0\.0\.1:\d+: \d+ picks, suspended \d+ ms more, HTTP 429, retry-after: 2 \(signal retry-after\)/,
    );
  });
});
