import { execFile } from "node:child_process";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";

describe("npm run demo", () => {
  it("shows the rotation, a 429 suspension and the all-suspended answer, says it is the test double, and exits 0", async () => {
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
    expect(stdout).toContain("ok: gpt-4o is skipped while suspended");
    expect(stdout).toContain("ok: 503 with Retry-After when every model is suspended");
    expect(stdout).not.toContain("NOT OK");
    expect(code).toBe(0);
  });
});
