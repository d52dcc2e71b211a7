/**
 * The project's listener on Kong's socket (pluginserver/listener.ts), through the real server process and a
 * hand-written Kong side (./raw-kong): messages cut anywhere or sent together, bodies of a MiB and more, Kong
 * closing connections while the server writes, and a burst of connections while the server cannot accept.
 */

import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { stockServerBin } from "../../kong-double";
import {
  bigAnswerEvent,
  bodyEvent,
  FIXTURE_PLUGINS,
  RawConnection,
  type RunningServer,
  request,
  startServer,
  startSizes,
} from "./raw-kong";

const SIZES = join(FIXTURE_PLUGINS, "sizes");
const MiB = 1024 * 1024;

const sha256 = (data: Buffer) => createHash("sha256").update(data).digest("hex");
const tick = () => new Promise((r) => setImmediate(r));

let servers: RunningServer[] = [];
afterEach(async () => {
  await Promise.all(servers.map((s) => s.stop()));
  servers = [];
});
async function start(options: Parameters<typeof startServer>[0]): Promise<RunningServer> {
  const server = await startServer(options);
  servers.push(server);
  return server;
}

async function waitForLog(server: RunningServer, line: RegExp): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!line.test(server.stderr())) {
    if (Date.now() > deadline) throw new Error(`no log line ${line}: ${server.stderr()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("messages from Kong, however they arrive", () => {
  it("reads requests written one byte at a time, and a 1 MiB raw body written as the socket takes it", async () => {
    const server = await start({ pluginsDirectory: SIZES });
    const conn = await RawConnection.open(server.socketPath);
    const instance = await startSizes(conn);
    const small = Buffer.from('{"model":"m"}');
    const byByte = async (bytes: Uint8Array) => {
      for (const byte of bytes) {
        conn.socket.write(Buffer.of(byte));
        await tick();
      }
    };
    expect(await bodyEvent(conn, instance, small, byByte)).toEqual({
      length: small.length,
      sha256: sha256(small),
    });

    const body = Buffer.alloc(MiB, "a");
    body.write('{"model":"m","messages":[', 0);
    expect(await bodyEvent(conn, instance, body)).toEqual({ length: MiB, sha256: sha256(body) });
    // A body of several MiB, in uneven writes, on the same connection.
    const big = Buffer.alloc(6 * MiB + 7, "b");
    const uneven = async (bytes: Uint8Array) => {
      for (let at = 0; at < bytes.length; at += 65_537) {
        conn.socket.write(bytes.subarray(at, at + 65_537));
        await tick();
      }
    };
    expect(await bodyEvent(conn, instance, big, uneven)).toEqual({ length: big.length, sha256: sha256(big) });
    expect(server.child.exitCode).toBeNull();
    conn.destroy();
  });

  it("answers several requests sent in one write, in order", async () => {
    const server = await start({ pluginsDirectory: SIZES });
    const conn = await RawConnection.open(server.socketPath);
    const ids = [conn.nextId(), conn.nextId(), conn.nextId()];
    const answers = ids.map((id) => conn.answer(id));
    conn.socket.write(
      Buffer.concat([
        request(ids[0] as number, "plugin.StartInstance", { Name: "sizes", Config: "{}" }),
        request(ids[1] as number, "plugin.GetPluginInfo", "sizes"),
        request(ids[2] as number, "plugin.StartInstance", { Name: "sizes", Config: "{}" }),
      ]),
    );
    const [a, info, b] = (await Promise.all(answers)) as [
      [unknown, unknown],
      [unknown, unknown],
      [unknown, unknown],
    ];
    expect(a).toEqual([null, expect.objectContaining({ Name: "sizes", Id: expect.any(Number) })]);
    expect(info).toEqual([null, expect.objectContaining({ Name: "sizes", Priority: 768 })]);
    expect((b[1] as { Id: number }).Id).toBe((a[1] as { Id: number }).Id + 1);
    conn.destroy();
  });

  it("answers an unknown method with an error and closes a connection that sends what is not MessagePack", async () => {
    const server = await start({ pluginsDirectory: SIZES });
    const conn = await RawConnection.open(server.socketPath);
    // Only RPC methods: not a property of the server object.
    expect(await conn.call("plugin.constructor", {})).toEqual([
      "method plugin.constructor not implemented",
      null,
    ]);
    expect(await conn.call("plugin.NoSuchMethod", {})).toEqual([
      "method plugin.NoSuchMethod not implemented",
      null,
    ]);
    const bad = await RawConnection.open(server.socketPath);
    const closed = new Promise((done) => bad.socket.once("close", done));
    bad.socket.write(Buffer.of(0x94, 0x00, 0x01, 0xc1));
    await closed;
    expect(server.stderr()).toMatch(/\[ERROR\] closing a connection from Kong: not MessagePack: byte 0xc1/);
    // The other connection and the server go on.
    expect(await conn.call("plugin.GetPluginInfo", "sizes")).toEqual([null, expect.anything()]);
    expect((await server.status()).badMessages).toBe(1);
    conn.destroy();
  });
});

/**
 * Kong closing connections while the server writes a large answer on them (what Kong does when it gives up on a
 * call), while other connections run whole events. Each closed connection ends as a socket error on the server
 * or an answer it drops because the connection had already gone; both are allowed, nothing else is.
 */
async function resetsUnderLoad(server: RunningServer, resets: number) {
  const loadConns = await Promise.all(Array.from({ length: 4 }, () => RawConnection.open(server.socketPath)));
  const instance = await startSizes(loadConns[0] as RawConnection);
  let stop = false;
  const outcomes = { answered: 0, wrong: 0, failed: [] as string[] };
  const load = loadConns.map(async (conn) => {
    while (!stop && server.child.exitCode === null) {
      try {
        const args = await bigAnswerEvent(conn, instance, 4096);
        if (args[0] === 200 && args[1] === "x".repeat(4096)) outcomes.answered++;
        else outcomes.wrong++;
      } catch (error) {
        outcomes.failed.push((error as Error).message);
        return;
      }
    }
  });
  for (let i = 0; i < resets && server.child.exitCode === null; i++) {
    try {
      const conn = await RawConnection.open(server.socketPath);
      // Kong sent the Step whose answer is 4 MiB, then closed without reading it.
      await bigAnswerEvent(conn, instance, 4 * MiB, () => setImmediate(() => conn.destroy())).catch(() => {});
    } catch {
      break; // the server is gone (kong-pdk's)
    }
  }
  stop = true;
  await Promise.all(load);
  for (const conn of loadConns) conn.destroy();
  return outcomes;
}

describe("Kong closing connections while the server answers", () => {
  it("ends only those connections: the server lives and the other connections' events all complete", async () => {
    const server = await start({ pluginsDirectory: SIZES });
    const outcomes = await resetsUnderLoad(server, 40);
    expect(server.child.exitCode).toBeNull();
    expect(outcomes.failed).toEqual([]);
    expect(outcomes.wrong).toBe(0);
    expect(outcomes.answered).toBeGreaterThan(0);
    const status = await server.status();
    // Every reset ended as one of the two allowed outcomes, at least one of them seen.
    expect((status.connectionErrors ?? 0) + (status.droppedAnswers ?? 0)).toBeGreaterThan(0);
    expect(server.stderr()).not.toMatch(/Uncaught|unhandled/i);
    // The server still serves a new connection.
    const after = await RawConnection.open(server.socketPath);
    expect(await bigAnswerEvent(after, await startSizes(after), 10)).toEqual([200, "x".repeat(10)]);
    after.destroy();
  });

  it("where kong-pdk 0.6.0's listener dies of it (read ECONNRESET / EPIPE)", async () => {
    const server = await start({ pluginsDirectory: SIZES, bin: stockServerBin() });
    await resetsUnderLoad(server, 200);
    const code = await Promise.race([
      server.exited,
      new Promise((r) => setTimeout(() => r("alive"), 10_000)),
    ]);
    expect(code).not.toBe("alive");
    expect(server.stderr()).toMatch(/ECONNRESET|EPIPE/);
  });
});

/**
 * A burst of connections while the server cannot accept (stopped with SIGSTOP, as a busy event loop would be):
 * the kernel queues them up to the listen backlog, and refuses the rest (EAGAIN on a unix socket). The kernel
 * caps the backlog at net.core.somaxconn, so the test needs that to be above the burst.
 */
const SOMAXCONN = Number(readFileSync("/proc/sys/net/core/somaxconn", "utf8"));
const BURST = 1000;

async function burst(server: RunningServer): Promise<{ answered: number; refused: string[] }> {
  const pid = server.child.pid as number;
  process.kill(pid, "SIGSTOP");
  const refused: string[] = [];
  let conns: RawConnection[] = [];
  try {
    const opened = await Promise.allSettled(
      Array.from({ length: BURST }, () => RawConnection.open(server.socketPath)),
    );
    for (const o of opened) {
      if (o.status === "fulfilled") conns.push(o.value);
      else refused.push((o.reason as NodeJS.ErrnoException).code ?? String(o.reason));
    }
  } finally {
    process.kill(pid, "SIGCONT");
  }
  const answers = await Promise.all(conns.map((c) => c.call("plugin.GetPluginInfo", "sizes")));
  for (const c of conns) c.destroy();
  conns = [];
  return { answered: answers.filter(([error]) => error === null).length, refused };
}

describe(`a burst of ${BURST} connections to the plugin-server socket`, () => {
  it.skipIf(SOMAXCONN <= BURST)(
    `queues them all with the default backlog (net.core.somaxconn is ${SOMAXCONN} here)`,
    { timeout: 60_000 },
    async () => {
      const server = await start({ pluginsDirectory: SIZES });
      await waitForLog(server, /server started at .* \(backlog 4096\)/);
      expect(await burst(server)).toEqual({ answered: BURST, refused: [] });
    },
  );

  it("refuses some with Node's default backlog of 511 (kong-pdk's), which is what Kong answered with a 503", {
    timeout: 60_000,
  }, async () => {
    const server = await start({ pluginsDirectory: SIZES, args: ["--listen-backlog", "511"] });
    const { answered, refused } = await burst(server);
    expect(refused.length).toBeGreaterThan(0);
    expect(new Set(refused)).toEqual(new Set(["EAGAIN"]));
    expect(answered).toBe(BURST - refused.length);
  });
});
