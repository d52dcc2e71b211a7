/**
 * Sends one attempt of the relay to an entry with undici (measured faster than node:http for this hop), over
 * keep-alive connections shared by every request of the plugin server, as Kong keeps its upstream connections.
 * It resolves with the answer's head and its body as a stream, unread: the relay decides from the head whether
 * to pass the answer on or to read it and move on. Never rejects: a connection failure, a timeout or the
 * budget's end is a `failed` result.
 */
import { EventEmitter } from "node:events";
import type { Readable } from "node:stream";
import { Agent, type Dispatcher } from "undici";

/** One attempt, as the relay hands it over. */
export interface Attempt {
  scheme: "http" | "https";
  host: string;
  port: number;
  method: string;
  /** Path and query, as sent. */
  target: string;
  /** Names and values in turn, as the bytes Kong sent them (duplicates kept). */
  headers: string[];
  body: Buffer | undefined;
  connectTimeoutMs: number;
  /** Waiting for the head; the relay bounds the wait for the first body byte itself. */
  headTimeoutMs: number;
  /** Silence allowed between two reads of the body. */
  readTimeoutMs: number;
  tlsVerify: boolean;
  /** Aborts the attempt (the failover budget ran out, or Kong went away). */
  signal: Stop;
}

/**
 * What aborts a running attempt: an EventEmitter with `abort()`, which undici takes as its signal as it takes an
 * AbortSignal. An AbortController per request cost about 10 µs of the relay's CPU (an EventTarget built, a
 * listener added and removed through it) for an abort that almost never comes; this costs an object.
 */
export class Stop extends EventEmitter {
  aborted = false;
  /** What undici fails the request with (it reads `reason` as it would an AbortSignal's). */
  reason: Error | undefined;

  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = new Error("aborted");
    this.emit("abort");
  }
}

export type Sent =
  | { kind: "answer"; status: number; headers: Record<string, string | string[]>; body: Readable }
  /**
   * connect: no connection, or a broken one; timeout: the service's connect or read timeout; aborted: the
   * budget's end or the client's departure; refused: the request could not be sent as it is (the client's doing).
   */
  | { kind: "failed"; why: "connect" | "timeout" | "aborted" | "refused"; message: string };

/** Idle connections kept per origin (Kong's upstream_keepalive_pool_size is 512 per pool). */
const CONNECTIONS_PER_ORIGIN = 512;
/** Agents by TLS verification and connect timeout: a handful of values in any configuration. */
const agents = new Map<string, Agent>();

function agentFor(tlsVerify: boolean, connectTimeoutMs: number): Agent {
  const key = `${tlsVerify}|${connectTimeoutMs}`;
  let agent = agents.get(key);
  if (agent === undefined) {
    agent = new Agent({
      connections: CONNECTIONS_PER_ORIGIN,
      keepAliveTimeout: 60_000,
      connect: { timeout: connectTimeoutMs, rejectUnauthorized: tlsVerify },
    });
    agents.set(key, agent);
  }
  return agent;
}

const TIMEOUTS = new Set(["UND_ERR_CONNECT_TIMEOUT", "UND_ERR_HEADERS_TIMEOUT", "UND_ERR_BODY_TIMEOUT"]);
const REFUSED = new Set(["UND_ERR_INVALID_ARG", "ERR_INVALID_CHAR", "ERR_INVALID_HTTP_TOKEN"]);

export async function send(attempt: Attempt): Promise<Sent> {
  const origin = `${attempt.scheme}://${attempt.host.includes(":") ? `[${attempt.host}]` : attempt.host}:${attempt.port}`;
  try {
    const answer = await agentFor(attempt.tlsVerify, attempt.connectTimeoutMs).request({
      origin,
      path: attempt.target,
      method: attempt.method as Dispatcher.HttpMethod,
      headers: attempt.headers,
      body: attempt.body ?? null,
      headersTimeout: attempt.headTimeoutMs,
      bodyTimeout: attempt.readTimeoutMs,
      signal: attempt.signal,
    });
    // The relay destroys bodies it leaves (a failover, Kong going away): an error then must not go unheard, or
    // it would end the process. Whoever reads the body listens for errors as well.
    answer.body.on("error", () => {});
    // Kong can only pass on 100-599; nginx calls a peer that sends anything else broken.
    if (answer.statusCode < 100 || answer.statusCode > 599) {
      answer.body.destroy();
      return { kind: "failed", why: "connect", message: `invalid status ${answer.statusCode} in the answer` };
    }
    return {
      kind: "answer",
      status: answer.statusCode,
      headers: answer.headers as Record<string, string | string[]>,
      body: answer.body,
    };
  } catch (error) {
    return failure(error, attempt.signal);
  }
}

function failure(error: unknown, signal: Stop): Sent {
  const { code, message } = error as { code?: string; message?: string };
  if (signal.aborted) return { kind: "failed", why: "aborted", message: "aborted" };
  if (code !== undefined && TIMEOUTS.has(code)) {
    const during = code === "UND_ERR_CONNECT_TIMEOUT" ? "connecting" : "waiting for the answer";
    return { kind: "failed", why: "timeout", message: `timed out ${during}` };
  }
  if (code !== undefined && REFUSED.has(code)) {
    return { kind: "failed", why: "refused", message: `request not sent: ${message ?? code}` };
  }
  const cause = (error as { cause?: { code?: string } }).cause?.code;
  return { kind: "failed", why: "connect", message: cause ?? code ?? message ?? String(error) };
}
