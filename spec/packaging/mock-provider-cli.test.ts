import { spawn } from "node:child_process";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";

describe("the mock provider command (docker-compose's stand-in for real endpoints)", () => {
  it("listens, answers chat completions with the model asked for, and takes failures over its control API", async () => {
    const child = spawn(process.execPath, [
      resolve("dist/scripts/mock-provider/cli.js"),
      "--port",
      "0",
      "--host",
      "127.0.0.1",
      "--name",
      "cli",
    ]);
    try {
      const line = await new Promise<string>((done, fail) => {
        child.stdout.once("data", (d: Buffer) => done(d.toString()));
        child.once("exit", (code) => fail(new Error(`exited ${code}`)));
      });
      const port = /listening on 127\.0\.0\.1:(\d+)/.exec(line)?.[1];
      expect(port).toBeDefined();
      const url = `http://127.0.0.1:${port}`;
      const chat = () =>
        fetch(`${url}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: '{"model":"gpt-4o"}',
        });
      expect(((await (await chat()).json()) as { model: string }).model).toBe("gpt-4o");
      await fetch(`${url}/__mock/fail`, {
        method: "POST",
        body: JSON.stringify({ status: 429, headers: { "retry-after": "3" } }),
      });
      const limited = await chat();
      expect(limited.status).toBe(429);
      expect(limited.headers.get("retry-after")).toBe("3");
    } finally {
      child.kill("SIGTERM");
    }
  });
});
