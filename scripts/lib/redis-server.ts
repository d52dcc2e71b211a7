/**
 * A throwaway redis-server for the tests of policy `redis` and the bench, never a mock and never the machine's
 * own Redis on 6379: a fresh server on a free port of 127.0.0.1, without persistence, that a test can stop (an
 * outage) and start again on the same port (the recovery). A missing redis-server fails the tests that need it,
 * saying how to install it: they prove what the issue asks for, so they must not be skipped quietly.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { accessSync, constants, mkdtempSync, rmSync } from "node:fs";
import { type AddressInfo, connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import Redis from "ioredis";

export const REDIS_MISSING =
  "redis-server is not installed, and the tests of policy redis run a real one: install it " +
  "(Debian/Ubuntu: apt-get install -y redis-server; macOS: brew install redis) or put redis-server on PATH. " +
  ".ci/run installs it when it is missing.";

/** The redis-server binary on PATH, or undefined. */
function findRedisServer(): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (dir === "") continue;
    const candidate = join(dir, "redis-server");
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

export const HAS_REDIS_SERVER = findRedisServer() !== undefined;

/** The redis-server binary on PATH (or `given`, a path); throws REDIS_MISSING without one. */
export function redisServerBin(given?: string): string {
  const bin = given !== undefined && given !== "redis-server" ? given : findRedisServer();
  if (bin === undefined) throw new Error(REDIS_MISSING);
  return bin;
}

export interface RedisServer {
  readonly host: string;
  readonly port: number;
  /** The version the server logs at start. */
  readonly version: string;
  /** Whether the server runs (between start() and stop()). */
  readonly running: boolean;
  /** Stops the server (SIGKILL by default: an outage, not a maintenance) and waits until it has exited. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again on the same port, empty, and waits until it answers PING. */
  start(): Promise<void>;
  /** Freezes the server (SIGSTOP): connections stay open and nothing is answered, as with a hung Redis. */
  freeze(): void;
  /** Lets a frozen server go on (SIGCONT). */
  thaw(): void;
  /** A client for the test's own assertions (created once; reconnects after a restart). */
  client(): Redis;
  /** Stops the server and closes the client. */
  close(): Promise<void>;
}

const HOST = "127.0.0.1";
const READY_WITHIN_MS = 10_000;

/** Starts a redis-server (on PATH, or `bin`) on a free port and resolves once it answers PING. */
export async function startRedisServer(bin = redisServerBin()): Promise<RedisServer> {
  let version = "unknown";
  const dir = mkdtempSync(join(tmpdir(), "redis-test-"));
  let port = 0;
  let child: ChildProcess | undefined;
  let assertions: Redis | undefined;

  const launch = async (): Promise<void> => {
    const output: string[] = [];
    const started = spawn(
      bin,
      [
        "--port",
        String(port),
        "--bind",
        HOST,
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        dir,
        "--daemonize",
        "no",
        "--protected-mode",
        "no",
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    child = started;
    for (const stream of [started.stdout, started.stderr]) {
      stream?.on("data", (data: Buffer) => {
        output.push(data.toString("utf8"));
        if (output.length > 50) output.shift();
      });
    }
    const exited = new Promise<string>((resolve) => {
      started.once("exit", (code, signal) => resolve(signal ? `signal ${signal}` : `exit ${code}`));
      started.once("error", (error) => resolve(error.message));
    });
    const deadline = Date.now() + READY_WITHIN_MS;
    while (Date.now() < deadline) {
      const outcome = await Promise.race([exited, pong(port).then((ok) => (ok ? "pong" : undefined))]);
      if (outcome === "pong") {
        version = /Redis version=([^,\s]+)/.exec(output.join(""))?.[1] ?? version;
        return;
      }
      if (outcome !== undefined) {
        child = undefined;
        throw new Error(`redis-server on port ${port} stopped (${outcome}):\n${output.join("")}`);
      }
      await pause(20);
    }
    started.kill("SIGKILL");
    throw new Error(`redis-server on port ${port} did not answer PING within ${READY_WITHIN_MS} ms`);
  };

  // A free port can be taken between the probe and the server's bind: try a few.
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    try {
      await launch();
      break;
    } catch (error) {
      if (attempt >= 3) throw error;
    }
  }

  const server: RedisServer = {
    host: HOST,
    get port() {
      return port;
    },
    get version() {
      return version;
    },
    get running() {
      return child !== undefined;
    },
    async stop(signal: NodeJS.Signals = "SIGKILL") {
      const running = child;
      child = undefined;
      if (running === undefined || running.exitCode !== null || running.signalCode !== null) return;
      await new Promise<void>((resolve) => {
        running.once("exit", () => resolve());
        running.kill(signal);
        // A frozen server acts on no signal but SIGKILL until it runs again.
        running.kill("SIGCONT");
      });
    },
    async start() {
      if (child !== undefined) return;
      await launch();
    },
    freeze() {
      child?.kill("SIGSTOP");
    },
    thaw() {
      child?.kill("SIGCONT");
    },
    client() {
      if (assertions === undefined) {
        assertions = new Redis({ host: HOST, port, maxRetriesPerRequest: 1 });
        // While the server is stopped its reconnection attempts fail: a test asks only when it runs.
        assertions.on("error", () => undefined);
      }
      return assertions;
    },
    async close() {
      assertions?.disconnect();
      assertions = undefined;
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return server;
}

/** A port nothing listens on right now (the kernel's choice for port 0). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, HOST, () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

/** Whether a Redis on the port answers PING with PONG (plain RESP over a socket, no client library). */
function pong(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, HOST);
    let reply = "";
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once("error", () => done(false));
    socket.once("connect", () => socket.write("*1\r\n$4\r\nPING\r\n"));
    socket.on("data", (data: Buffer) => {
      reply += data.toString("latin1");
      if (reply.includes("\r\n")) done(reply.startsWith("+PONG"));
    });
  });
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
