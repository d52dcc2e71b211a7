/**
 * Kong's side of the plugin-server socket, by hand: the real server process started on a socket of its own, and
 * a MessagePack RPC client whose writes the test controls (cut into single bytes, several messages in one write,
 * a connection closed while the server answers). The client decodes what comes back with @msgpack/msgpack,
 * independently of the server's own framing.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { Decoder, encode } from "@msgpack/msgpack";

export const PROJECT_SERVER = resolve("dist/pluginserver/main.js");
export const FIXTURE_PLUGINS = resolve("spec/fixtures/plugins");

export interface RunningServer {
  child: ChildProcess;
  socketPath: string;
  /** Everything the server wrote on stderr so far. */
  stderr(): string;
  /** Resolves with the exit code (or signal) once the server has exited. */
  exited: Promise<number | string>;
  /** The project's server's `status: {...}` line, asked for with SIGUSR2. */
  status(): Promise<Record<string, number>>;
  stop(): Promise<void>;
}

export async function startServer(options: {
  pluginsDirectory: string;
  bin?: string;
  args?: string[];
}): Promise<RunningServer> {
  const dir = mkdtempSync(join(tmpdir(), "raw-kong-"));
  const socketPath = join(dir, "server.sock");
  const child = spawn(
    process.execPath,
    [
      options.bin ?? PROJECT_SERVER,
      "--plugins-directory",
      options.pluginsDirectory,
      "--kong-prefix",
      dir,
      "--sock-name",
      "server.sock",
      ...(options.args ?? []),
    ],
    { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, MODEL_BASED_ROUND_ROBIN_STATE_FILE: "" } },
  );
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<number | string>((done) =>
    child.once("exit", (code, signal) => done(code ?? signal ?? "?")),
  );
  const deadline = Date.now() + 30_000;
  while (!(await accepts(socketPath))) {
    if (child.exitCode !== null) throw new Error(`server exited at start: ${stderr}`);
    if (Date.now() > deadline) throw new Error(`server not listening: ${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    child,
    socketPath,
    stderr: () => stderr,
    exited,
    async status() {
      const seen = stderr.length;
      child.kill("SIGUSR2");
      const until = Date.now() + 10_000;
      for (;;) {
        const match = /\[INFO\] status: (\{.*\})/.exec(stderr.slice(seen));
        if (match !== null) return JSON.parse(match[1] as string) as Record<string, number>;
        if (Date.now() > until) throw new Error("no status line");
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGKILL");
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function accepts(path: string): Promise<boolean> {
  return new Promise((done) => {
    const socket = connect(path);
    socket.once("connect", () => {
      socket.destroy();
      done(true);
    });
    socket.once("error", () => done(false));
  });
}

/** `[0, msgid, method, [arg]]`, as Kong sends it. */
export const request = (msgid: number, method: string, arg: unknown): Uint8Array =>
  encode([0, msgid, method, [arg]], { ignoreUndefined: true });

/** One connection, answers matched by msgid. */
export class RawConnection {
  private readonly waiting = new Map<number, (answer: [unknown, unknown]) => void>();
  private buffer: Buffer = Buffer.alloc(0);
  private readonly decoder = new Decoder();
  private msgid = 0;
  /** Set when the connection failed or closed. */
  closed: Error | undefined;

  private constructor(readonly socket: Socket) {
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("error", (error) => {
      this.closed = error;
    });
    socket.on("close", () => {
      this.closed ??= new Error("closed");
      for (const [, fail] of this.waiting) fail([this.closed.message, undefined]);
      this.waiting.clear();
    });
  }

  static open(socketPath: string): Promise<RawConnection> {
    return new Promise((done, fail) => {
      const socket = connect(socketPath);
      socket.once("connect", () => done(new RawConnection(socket)));
      socket.once("error", fail);
    });
  }

  nextId(): number {
    return ++this.msgid;
  }

  /** Waits for the answer to `msgid`: `[error, result]`. */
  answer(msgid: number): Promise<[unknown, unknown]> {
    return new Promise((done) => this.waiting.set(msgid, done));
  }

  /** Sends one request (in one write) and waits for its answer. */
  async call(method: string, arg: unknown): Promise<[unknown, unknown]> {
    const id = this.nextId();
    const answered = this.answer(id);
    this.socket.write(request(id, method, arg));
    return answered;
  }

  destroy(): void {
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    for (;;) {
      if (this.buffer.length === 0) return;
      let frame: unknown;
      try {
        const it = this.decoder.decodeMulti(this.buffer)[Symbol.iterator]();
        frame = it.next().value;
      } catch (error) {
        if (error instanceof RangeError) return; // not complete yet
        throw error;
      }
      const used = (this.decoder as unknown as { pos: number }).pos;
      this.buffer = this.buffer.subarray(used);
      const [, msgid, error, result] = frame as [number, number, unknown, unknown];
      this.waiting.get(msgid)?.([error, result]);
      this.waiting.delete(msgid);
    }
  }
}

/** Starts one instance of the `sizes` fixture plugin; its id. */
export async function startSizes(conn: RawConnection): Promise<number> {
  const [error, result] = await conn.call("plugin.StartInstance", { Name: "sizes", Config: "{}" });
  if (error !== null && error !== undefined) throw new Error(String(error));
  return (result as { Id: number }).Id;
}

interface StepReply {
  EventId: number;
  Data: { Method: string; Args: unknown[] } | string;
}

async function expectCall(answer: Promise<[unknown, unknown]>, method: string): Promise<StepReply> {
  const [error, result] = await answer;
  if (error !== null && error !== undefined) throw new Error(`RPC error: ${String(error)}`);
  const reply = result as StepReply;
  const got = typeof reply.Data === "string" ? reply.Data : reply.Data.Method;
  if (got !== method) throw new Error(`expected ${method}, got ${got}`);
  return reply;
}

/**
 * One access event of the `sizes` plugin that asks for an answer of `size` bytes; resolves with the
 * `kong.response.exit` arguments. `beforeAnswer` runs after the Step whose answer is the big one is written.
 */
export async function bigAnswerEvent(
  conn: RawConnection,
  instanceId: number,
  size: number,
  beforeAnswer?: () => void,
): Promise<unknown[]> {
  const first = await expectCall(
    conn.call("plugin.HandleEvent", { InstanceId: instanceId, EventName: "access" }),
    "kong.request.get_header",
  );
  const id = conn.nextId();
  const answered = conn.answer(id);
  conn.socket.write(request(id, "plugin.Step", { EventId: first.EventId, Data: String(size) }));
  beforeAnswer?.();
  const exit = await expectCall(answered, "kong.response.exit");
  return (exit.Data as { Args: unknown[] }).Args;
}

/**
 * One access event of the `sizes` plugin that reads `body` as the raw body; `write` sends each request's bytes
 * (whole by default). Resolves with what the plugin answered: the body's length and SHA-256.
 */
export async function bodyEvent(
  conn: RawConnection,
  instanceId: number,
  body: Buffer,
  write: (bytes: Uint8Array) => Promise<void> = async (bytes) => {
    conn.socket.write(bytes);
  },
): Promise<unknown> {
  const send = async (method: string, arg: unknown) => {
    const id = conn.nextId();
    const answered = conn.answer(id);
    await write(request(id, method, arg));
    return answered;
  };
  const first = await expectCall(
    send("plugin.HandleEvent", { InstanceId: instanceId, EventName: "access" }),
    "kong.request.get_header",
  );
  // Kong omits Data for nil (the header is absent).
  const read = await expectCall(send("plugin.Step", { EventId: first.EventId }), "kong.request.get_raw_body");
  const exit = await expectCall(
    send("plugin.Step", { EventId: read.EventId, Data: body }),
    "kong.response.exit",
  );
  return ((exit.Data as { Args: unknown[] }).Args as unknown[])[1];
}
