/**
 * A throwaway redis-server on a free loopback port, for the bench: no persistence (`--save ""`, no AOF), gone
 * when stopped. Needs `redis-server` on PATH (or its path given).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createServer } from "node:net";

export interface RedisServer {
  readonly host: string;
  readonly port: number;
  /** The version the server logs at start. */
  readonly version: string;
  stop(): Promise<void>;
}

const READY = /Ready to accept connections/;

export async function startRedisServer(bin = "redis-server", timeoutMs = 5000): Promise<RedisServer> {
  const host = "127.0.0.1";
  const port = await freePort(host);
  const child = spawn(
    bin,
    ["--port", String(port), "--bind", host, "--save", "", "--appendonly", "no", "--loglevel", "notice"],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let output = "";
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => fail(new Error(`redis-server not ready after ${timeoutMs} ms`)),
      timeoutMs,
    );
    const fail = (error: Error) => {
      clearTimeout(timer);
      child.kill("SIGKILL");
      reject(new Error(`${error.message}\n${output}`));
    };
    const exited = (code: number | null, signal: string | null) =>
      fail(new Error(`redis-server exited (${code ?? signal})`));
    child.once("error", fail);
    child.once("exit", exited);
    let ready = false;
    child.stdout?.on("data", (chunk: Buffer) => {
      output += chunk.toString("utf8");
      if (!ready && READY.test(output)) {
        ready = true;
        clearTimeout(timer);
        child.off("exit", exited);
        child.off("error", fail);
        resolve();
      }
    });
    child.stderr?.on("data", (chunk: Buffer) => {
      output += chunk.toString("utf8");
    });
  });
  return {
    host,
    port,
    version: /Redis version=([^,\s]+)/.exec(output)?.[1] ?? "unknown",
    stop: () => stop(child),
  };
}

function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once("exit", () => resolve());
    child.kill("SIGTERM");
  });
}

/** A port nothing listens on right now (the kernel's pick, released again). */
function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() =>
        typeof address === "object" && address !== null
          ? resolve(address.port)
          : reject(new Error("no port")),
      );
    });
  });
}
