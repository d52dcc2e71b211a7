/**
 * Kong's side of the "MsgPack:1" RPC: a pool of unix-socket connections, each carrying exactly one request at
 * a time (Kong opens a cosocket per call, sends one `[0, msgid, "plugin.X", [arg]]`, reads until the matching
 * `[1, msgid, err, result]`, then puts the socket back in its keepalive pool). Frames are decoded as a stream,
 * so splits and coalesced frames are handled like lua-MessagePack's streaming unpacker does. Notifications
 * (`[2, ...]`) are skipped. A read waits at most the cosocket read timeout, `lua_socket_read_timeout` (K3.9.3
 * rpc/mp_rpc.lua sets none of its own; 60 s unless configured): then Kong closes the connection and the call fails.
 */
import { connect, type Socket } from "node:net";
import { Decoder, encode } from "@msgpack/msgpack";

export class RpcError extends Error {
  override name = "RpcError";
}

interface Connection {
  socket: Socket;
  pending?: { id: number; resolve(v: unknown): void; reject(e: Error): void; timer: NodeJS.Timeout };
}

export class RpcClient {
  private readonly idle: Connection[] = [];
  private readonly all = new Set<Connection>();
  private msgid = 0;
  /** Every call made, for tests of the protocol itself. */
  readonly calls: { method: string; arg: unknown }[] = [];

  constructor(
    private readonly socketPath: string,
    private readonly readTimeoutMs: number,
  ) {}

  async call(method: string, arg: unknown): Promise<unknown> {
    const conn = this.idle.pop() ?? (await this.open());
    const id = ++this.msgid;
    this.calls.push({ method, arg });
    try {
      const result = await new Promise<unknown>((resolve, reject) => {
        const timer = setTimeout(() => {
          reject(new RpcError("timeout"));
          conn.socket.destroy();
        }, this.readTimeoutMs);
        conn.pending = { id, resolve, reject, timer };
        // undefined map values are left out, as Lua drops nil keys from a table.
        conn.socket.write(encode([0, id, method, [arg]], { ignoreUndefined: true }));
      });
      this.idle.push(conn);
      return result;
    } finally {
      conn.pending = undefined;
    }
  }

  close(): void {
    for (const conn of this.all) conn.socket.destroy();
    this.all.clear();
    this.idle.length = 0;
  }

  private open(): Promise<Connection> {
    return new Promise((resolve, reject) => {
      const socket = connect(this.socketPath);
      const conn: Connection = { socket };
      socket.once("connect", () => {
        this.all.add(conn);
        resolve(conn);
      });
      socket.once("error", (error) => {
        if (!this.all.has(conn))
          reject(new RpcError(`connect() to unix:${this.socketPath} failed: ${error.message}`));
      });
      const decoder = new Decoder();
      let chunks: Buffer = Buffer.alloc(0);
      socket.on("data", (data: Buffer) => {
        chunks = chunks.length === 0 ? data : Buffer.concat([chunks, data]);
        // Decode every complete frame in the buffer; keep the incomplete tail for the next read.
        for (;;) {
          if (chunks.length === 0) break;
          let frame: unknown;
          let used: number;
          try {
            const view = new DataView(chunks.buffer, chunks.byteOffset, chunks.byteLength);
            const it = decoder.decodeMulti(view)[Symbol.iterator]();
            const first = it.next();
            if (first.done) break;
            frame = first.value;
            used = (decoder as unknown as { pos: number }).pos;
          } catch (error) {
            if (error instanceof RangeError) break; // incomplete frame: wait for more bytes
            throw error;
          }
          chunks = chunks.subarray(used);
          this.onFrame(conn, frame);
        }
      });
      socket.on("close", () => {
        this.all.delete(conn);
        const i = this.idle.indexOf(conn);
        if (i !== -1) this.idle.splice(i, 1);
        if (conn.pending) {
          clearTimeout(conn.pending.timer);
          conn.pending.reject(new RpcError("no data"));
        }
      });
    });
  }

  private onFrame(conn: Connection, frame: unknown): void {
    if (!Array.isArray(frame)) return;
    if (frame[0] === 2) return; // notification
    const pending = conn.pending;
    if (pending === undefined) return;
    clearTimeout(pending.timer);
    if (frame[0] !== 1 || frame[1] !== pending.id) {
      pending.reject(new RpcError(`assertion failed: bad response ${JSON.stringify(frame.slice(0, 2))}`));
      return;
    }
    const [, , err, result] = frame;
    if (err !== null && err !== undefined) pending.reject(new RpcError(String(err)));
    else pending.resolve(result);
  }
}
