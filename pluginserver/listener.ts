/**
 * The unix socket Kong talks to ("MsgPack:1" RPC), replacing kong-pdk 0.6.0's listener.js. The protocol is the
 * same: Kong sends `[0, msgid, "plugin.<Method>", [arg]]` and reads `[1, msgid, error, result]`, one request at
 * a time per connection (it pools connections, and the calls of one event may come on different ones).
 *
 * What differs, and why:
 *  - Every connection has an error handler, and a failure ends that connection only. kong-pdk's had none: when
 *    Kong gave up on a call (its socket timeout, a worker exiting, a reload) and closed a connection while the
 *    server was still writing the answer, Node raised `read ECONNRESET` and the whole process died, with every
 *    request in flight on every other connection. An answer for a connection that is gone is dropped; the event
 *    it belonged to is freed by the server's PDK call bound (./server), as for any call Kong stops answering.
 *  - Messages are cut by ./msgpack-frames and decoded once each (kong-pdk re-decoded the whole buffer on every
 *    chunk and died on some splits). Bytes that are not MessagePack close that connection with a log line.
 *  - The listen backlog is set (default 4096, see DEFAULT_BACKLOG): Node's default of 511 overflowed when a burst
 *    of Kong's connections arrived while the event loop was busy, and Kong answered those requests with a 503.
 *  - Only the server's RPC methods are callable (`plugin.` + a capitalised name), not any of its properties.
 *  - An answer that cannot be encoded becomes an error answer instead of an unhandled rejection.
 */
import { unlinkSync } from "node:fs";
import { createServer, type Server as NetServer, type Socket } from "node:net";
import { Decoder, Encoder } from "@msgpack/msgpack";

import { MessageFramer } from "./msgpack-frames";

/** The listen backlog unless told otherwise; the kernel caps it at net.core.somaxconn (4096 since Linux 5.4). */
export const DEFAULT_BACKLOG = 4096;

const RPC_METHOD = /^plugin\.([A-Z][A-Za-z]*)$/;

export interface ListenerLogger {
  debug(...args: unknown[]): void;
  info(...args: unknown[]): void;
  warn(...args: unknown[]): void;
  error(...args: unknown[]): void;
}

export interface ListenerOptions {
  socketPath: string;
  backlog: number;
  /** Log every RPC with its arguments (-v). Off, the line is not even built: a 1 MiB body would cost. */
  verbose: boolean;
}

export interface ListenerStatus {
  /** Kong's connections open now. */
  connections: number;
  /** Connections that ended with a socket error (reset, broken pipe), each ending only itself. */
  connectionErrors: number;
  /** Answers not sent because their connection was already gone. */
  droppedAnswers: number;
  /** Connections closed because what arrived was not MessagePack or not an RPC request. */
  badMessages: number;
}

/** The RPC methods Kong calls (kong-pdk's Server: GetPluginInfo, StartInstance, HandleEvent, Step, ...). */
type RpcTarget = object;

export class KongListener {
  private readonly encoder = new Encoder();
  private readonly decoder = new Decoder();
  private readonly sockets = new Set<Socket>();
  private readonly counts = { connectionErrors: 0, droppedAnswers: 0, badMessages: 0 };
  private server: NetServer | undefined;

  constructor(
    private readonly target: RpcTarget,
    private readonly logger: ListenerLogger,
    private readonly options: ListenerOptions,
  ) {}

  /** Listens on the socket (removing a stale one first, as kong-pdk does); rejects if it cannot. */
  listen(): Promise<NetServer> {
    const { socketPath, backlog } = this.options;
    try {
      unlinkSync(socketPath);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") return Promise.reject(error);
    }
    const server = createServer((socket) => this.accept(socket));
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen({ path: socketPath, backlog }, () => {
        server.off("error", reject);
        // Once listening, an error (an accept that failed: too many open files) costs that connection, not
        // the server: libuv keeps listening.
        server.on("error", (error) => this.logger.warn(`plugin-server socket: ${error.message}`));
        this.logger.info(`server started at ${socketPath} (backlog ${backlog})`);
        resolve(server);
      });
    });
  }

  status(): ListenerStatus {
    return { connections: this.sockets.size, ...this.counts };
  }

  close(): void {
    this.server?.close();
    for (const socket of this.sockets) socket.destroy();
  }

  private accept(socket: Socket): void {
    this.sockets.add(socket);
    const framer = new MessageFramer();
    socket.on("error", (error: NodeJS.ErrnoException) => {
      this.counts.connectionErrors++;
      // Kong closing a connection it gave up on is routine: info, not an alarm.
      this.logger.info(
        `a connection from Kong failed (${error.code ?? error.message}); only its calls are lost`,
      );
    });
    socket.on("close", () => this.sockets.delete(socket));
    socket.on("data", (chunk: Buffer) => {
      let messages: Buffer[];
      try {
        messages = framer.push(chunk);
      } catch (error) {
        this.refuse(socket, `not MessagePack: ${(error as Error).message}`);
        return;
      }
      for (const bytes of messages) {
        if (socket.destroyed) return;
        let message: unknown;
        try {
          message = this.decoder.decode(bytes);
        } catch (error) {
          this.refuse(socket, `undecodable message: ${(error as Error).message}`);
          return;
        }
        this.handle(socket, message);
      }
    });
  }

  private refuse(socket: Socket, why: string): void {
    this.counts.badMessages++;
    this.logger.error(`closing a connection from Kong: ${why}`);
    socket.destroy();
  }

  private handle(socket: Socket, message: unknown): void {
    if (!Array.isArray(message) || message[0] !== 0 || message.length !== 4 || !Array.isArray(message[3])) {
      this.refuse(socket, "not an RPC request [0, msgid, method, args]");
      return;
    }
    const [, msgid, method, args] = message as [0, unknown, unknown, unknown[]];
    const name = typeof method === "string" ? RPC_METHOD.exec(method)?.[1] : undefined;
    const fn = name === undefined ? undefined : (this.target as Record<string, unknown>)[name];
    if (typeof fn !== "function") {
      const error = `method ${String(method)} not implemented`;
      this.logger.error(`rpc: #${String(msgid)} ${error}`);
      this.answer(socket, msgid, error, undefined);
      return;
    }
    if (this.options.verbose) {
      this.logger.debug(`rpc: #${String(msgid)} method: ${method} args: ${JSON.stringify(args)}`);
    }
    let result: Promise<unknown>;
    try {
      result = Promise.resolve(fn.apply(this.target, args));
    } catch (error) {
      result = Promise.reject(error);
    }
    result.then(
      (value) => this.answer(socket, msgid, undefined, value),
      (error: unknown) => {
        this.logger.error(`rpc: #${String(msgid)} ${errorText(error)}`);
        this.answer(socket, msgid, errorText(error), undefined);
      },
    );
  }

  /** Sends `[1, msgid, error, result]`, unless Kong has closed that connection meanwhile. */
  private answer(socket: Socket, msgid: unknown, error: string | undefined, result: unknown): void {
    if (socket.destroyed || !socket.writable) {
      this.counts.droppedAnswers++;
      return;
    }
    let bytes: Uint8Array;
    try {
      bytes = this.encoder.encode([1, msgid, error, result]);
    } catch (encodeError) {
      const why = `the answer to #${String(msgid)} cannot be encoded: ${errorText(encodeError)}`;
      this.logger.error(why);
      bytes = this.encoder.encode([1, msgid, why, undefined]);
    }
    socket.write(bytes);
  }
}

function errorText(error: unknown): string {
  if (typeof error === "string") return error;
  if (error instanceof Error) return error.message;
  if (error !== null && typeof error === "object" && "message" in error) return String(error.message);
  return String(error);
}
