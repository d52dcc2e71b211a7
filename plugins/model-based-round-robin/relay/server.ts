/**
 * The relay: Kong's upstream for every request access relays (loopback, one per plugin server). Kong proxies to
 * it as to any upstream (its timeouts, buffering, streaming, logging and response plugins all apply), and the
 * relay carries out access's decision, found through the request's ticket:
 *
 *  - reads the body as Kong forwards it (it never crosses the PDK socket) and refuses what access used to refuse
 *    (not JSON, not an object, too large), then writes the entry's model into it byte for byte;
 *  - sends it to the entry with the entry's key, the client's own credentials removed;
 *  - while no byte of an answer has gone back to Kong, moves on to the next untried entry of the rotation when
 *    the answer's status is in failover_on_statuses, the entry cannot be reached, or it stays silent (time to the
 *    first byte), within failover_attempts and failover_timeout, each entry at most once;
 *  - pipes the answer that stays back to Kong as it arrives, with the served model's headers: nothing is held
 *    whole (an error answer it may move on from is read, up to MAX_HELD_BYTES), and after the first byte
 *    nothing is retried; an answer broken off benches its entry for the next requests;
 *  - applies core/outcome.ts's rule to every answer it sees (the log phase does nothing for these requests).
 *
 * An error on either socket ends that request only. A request without a live ticket reaches no provider.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Readable } from "node:stream";
import type { Balancer } from "../core/balancer";
import { modelHeaders } from "../core/choice-log";
import { credentialsIn } from "../core/client-credentials";
import type { RoundRobinConfig } from "../core/config";
import {
  ATTEMPTS_HEADER,
  type AttemptFailure,
  answerHeaders,
  attemptHeaders,
  unreachableRefusal,
} from "../core/failover";
import { countRefusal, countSelfProxied } from "../core/metrics";
import {
  bodyTooLargeError,
  errorCode,
  errorResponse,
  internalError,
  invalidPathError,
  type OpenAiError,
} from "../core/openai-error";
import { applyOutcome, outcomeOf } from "../core/outcome";
import {
  type Bodiless,
  checkBody,
  type ModelReadyBody,
  nextAttempt,
  type Refusal,
  type RequestHead,
  type Route,
  refusal,
  relayRoute,
} from "../core/routing";
import { firstValues } from "../core/signals";
import { relativeToService, unsafePathProblem } from "../core/upstream-path";
import { type Sent, Stop, send } from "./send";
import { type Decision, TICKET_HEADER, takeTicket } from "./tickets";

/** The largest answer read to decide on it (an error the relay may move on from); larger ones are piped. */
const MAX_HELD_BYTES = 1024 * 1024;
/** Longer than Kong keeps an idle upstream connection (upstream_keepalive_idle_timeout, 60 s). */
const KEEP_ALIVE_MS = 75_000;
const DROPPED = new Set([TICKET_HEADER]);

/** A plugin configuration the relay serves, as its latest instance holds it. */
export interface Served {
  config: RoundRobinConfig;
  balancer: Balancer;
}

export type Log = (message: string) => void;

export function createRelay(served: (pluginId: string) => Served | undefined, log: Log): Server {
  const server = createServer({ keepAliveTimeout: KEEP_ALIVE_MS }, (req, res) => {
    // Either side may go away at any time: that ends this request, never the process.
    req.on("error", () => {});
    res.on("error", () => {});
    relay(req, res, served, log).catch((error: unknown) => {
      log(`relay: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
      if (!res.headersSent) answer(res, refusal(500, internalError("the relay failed on this request")));
      else res.destroy();
    });
  });
  server.headersTimeout = 60_000;
  server.keepAliveTimeout = KEEP_ALIVE_MS;
  server.on("clientError", (_error, socket) => socket.destroy());
  return server;
}

async function relay(
  req: IncomingMessage,
  res: ServerResponse,
  served: (pluginId: string) => Served | undefined,
  log: Log,
): Promise<void> {
  const decision = takeTicket(req.headers[TICKET_HEADER]);
  const plugin = decision === undefined ? undefined : served(decision.pluginId);
  if (decision === undefined || plugin === undefined) {
    req.resume();
    answer(
      res,
      refusal(502, relayRefused(decision === undefined ? "no valid ticket" : "its plugin is unknown")),
    );
    return;
  }
  const { config } = plugin;
  const read = await readBody(req, config.maxBodyBytes);
  if (read.kind === "aborted") return;
  if (read.kind === "too-large") {
    answer(res, counted(config, refusal(413, bodyTooLargeError(read.size, config.maxBodyBytes))));
    return;
  }
  const head = requestHead(req, config.clientCredentialHeaders);
  const bodiless = head.contentLength === undefined && head.transferEncoding === undefined;
  const body: ModelReadyBody | Bodiless | Refusal = bodiless ? { kind: "bodiless" } : checkBody(read.body);
  if (body.kind === "refuse") {
    answer(res, counted(config, body));
    return;
  }
  const url = req.url ?? "/";
  const queryAt = url.indexOf("?");
  const path = queryAt === -1 ? url : url.slice(0, queryAt);
  const unsafe = unsafePathProblem(relativeToService(path, decision.servicePath));
  if (unsafe !== undefined) {
    answer(res, counted(config, refusal(400, invalidPathError(unsafe))));
    return;
  }
  const request: Request = {
    head,
    body,
    upstream: { uri: path, serviceProtocol: undefined, servicePath: decision.servicePath },
    method: req.method ?? "GET",
    query: queryAt === -1 ? "" : url.slice(queryAt),
    rawHeaders: req.rawHeaders,
  };
  await failOver(plugin, decision, request, res, log);
}

interface Request {
  head: RequestHead;
  body: ModelReadyBody | Bodiless;
  upstream: { uri: string; serviceProtocol: undefined; servicePath: string | undefined };
  method: string;
  /** "" or "?..." as Kong forwarded it. */
  query: string;
  rawHeaders: string[];
}

/** An answer read whole (an error the relay may still move on from), with the route it came from. */
interface Held {
  status: number;
  headers: Record<string, string | string[]>;
  body: Buffer;
  route: Route;
}

async function failOver(
  { config, balancer }: Served,
  decision: Decision,
  request: Request,
  res: ServerResponse,
  log: Log,
): Promise<void> {
  const { env } = decision;
  const settings = config.failover;
  const deadlineMs = Date.now() + settings.budgetMs;
  // Kong going away (its read timeout, the client's departure) aborts whatever attempt is running, and the
  // budget's end the one waiting for an answer; either ends the loop, so one Stop serves every attempt.
  let gone = false;
  const stop = new Stop();
  res.on("close", () => {
    if (res.writableFinished) return;
    gone = true;
    stop.abort();
  });
  const first = firstRoute(config, balancer, decision, request);
  if (first.kind === "refuse") {
    answer(res, counted(config, first));
    return;
  }
  const tried = new Set<string>();
  let route: Route = first;
  let attempts = 0;
  let held: Held | undefined;
  let failure: { why: AttemptFailure; message: string } | undefined;
  let own: Refusal | undefined;
  const observe = (observed: Parameters<typeof outcomeOf>[1], why?: string) => {
    const nowMs = Date.now();
    const line = applyOutcome(balancer, env, route.entry.key, outcomeOf(config, observed, nowMs), nowMs, why);
    if (line !== undefined) log(line);
  };

  for (;;) {
    tried.add(route.entry.key);
    attempts++;
    const leftMs = Math.max(1, deadlineMs - Date.now());
    const silenceMs = Math.min(settings.attemptMs > 0 ? settings.attemptMs : decision.readTimeoutMs, leftMs);
    const mayMoveOn = attempts <= settings.attempts;
    // The budget bounds the wait for an answer, never an answer already on its way back.
    const budgetTimer = setTimeout(() => stop.abort(), leftMs);
    const sent = await send({
      scheme: route.entry.scheme,
      host: route.entry.host,
      port: route.entry.port,
      method: request.method,
      target: (route.path ?? request.upstream.uri) + request.query,
      headers: attemptHeaders(request.rawHeaders, route.entry, DROPPED, route.clearHeaders),
      body: request.body.kind === "body" ? (route.body ?? request.body.raw) : undefined,
      connectTimeoutMs: Math.min(decision.connectTimeoutMs, leftMs),
      headTimeoutMs: silenceMs,
      readTimeoutMs: decision.readTimeoutMs,
      tlsVerify: settings.tlsVerify,
      signal: stop,
    });
    if (gone) {
      clearTimeout(budgetTimer);
      if (sent.kind === "answer") sent.body.destroy();
      return;
    }
    const outcome = await settle(sent, config, silenceMs, observe);
    clearTimeout(budgetTimer);
    if (outcome.kind === "committed") {
      countSelfProxied(config.pluginId, env, attempts);
      commit(res, outcome, route, attempts, config, observe);
      return;
    }
    if (outcome.kind === "held") {
      held = { ...outcome.held, route };
      if (!config.failover.onStatuses.has(held.status) || !mayMoveOn) break;
    } else {
      failure = outcome.failure;
      if (!mayMoveOn) break;
    }
    if (Date.now() >= deadlineMs) {
      if (held === undefined) failure = { why: "budget", message: "the failover budget ran out" };
      break;
    }
    const next = nextAttempt(config, balancer, env, request, tried);
    if (next === undefined) break;
    if (next.kind === "refuse") {
      own = next;
      break;
    }
    route = next;
  }
  countSelfProxied(config.pluginId, env, attempts);
  if (own === undefined && held !== undefined) {
    giveHeld(res, held, attempts, config);
    return;
  }
  const refused =
    own ?? unreachableRefusal(failure?.why, failure?.message ?? "no attempt made", settings.budgetMs);
  answer(res, counted(config, refused), attemptsHeader(config, attempts));
}

/** The first attempt's route: access's entry, or (the configuration changed meanwhile) the rotation's next. */
function firstRoute(
  config: RoundRobinConfig,
  balancer: Balancer,
  decision: Decision,
  request: Request,
): Route | Refusal {
  const list = decision.env === "sandbox" ? config.sandbox : config.production;
  const entry = list?.find((candidate) => candidate.key === decision.entryKey);
  if (entry !== undefined)
    return relayRoute(decision.env, entry, request.upstream, request.head, request.body);
  return (
    nextAttempt(config, balancer, decision.env, request, new Set()) ??
    refusal(502, relayRefused("its entry is no longer configured"))
  );
}

type Settled =
  /** The answer stays: its head and first bytes are ready to go back to Kong, the rest streams after them. */
  | {
      kind: "committed";
      status: number;
      headers: Record<string, string | string[]>;
      prefix: Buffer[];
      rest: Readable | undefined;
    }
  | { kind: "held"; held: Omit<Held, "route"> }
  | { kind: "failed"; failure: { why: AttemptFailure; message: string } };

/**
 * What one attempt came to. An answer whose status suspends or fails over is read whole (up to MAX_HELD_BYTES:
 * error bodies are small, and a billing error is in the body); any other answer is kept only until its first
 * byte arrives, so that a silent entry can still be left for another.
 */
async function settle(
  sent: Sent,
  config: RoundRobinConfig,
  timeoutMs: number,
  observe: (observed: Parameters<typeof outcomeOf>[1], why?: string) => void,
): Promise<Settled> {
  if (sent.kind === "failed") {
    if (sent.why === "aborted") return { kind: "failed", failure: { why: "budget", message: sent.message } };
    // Only the entry's own failure benches it: not a request that could not be sent as it is.
    if (sent.why !== "refused") observe({ kind: "failed" }, `the relay could not reach it (${sent.message})`);
    return {
      kind: "failed",
      failure: { why: sent.why === "timeout" ? "timeout" : "connect", message: sent.message },
    };
  }
  const { status, headers } = sent;
  const firsts = firstValues(headers);
  if (config.failover.onStatuses.has(status) || config.suspendOnStatuses.has(status)) {
    const read = await readAnswer(sent.body, MAX_HELD_BYTES, timeoutMs);
    if (read.kind === "whole") {
      observe({
        kind: "answer",
        status,
        source: "provider",
        headers: firsts,
        body: read.body,
        readsEveryBody: true,
      });
      return { kind: "held", held: { status, headers, body: read.body } };
    }
    if (read.kind === "over") {
      observe({ kind: "answer", status, source: "provider", headers: firsts });
      return { kind: "committed", status, headers, prefix: read.chunks, rest: sent.body };
    }
    observe({ kind: "failed" }, `its answer broke off (${read.message})`);
    return { kind: "failed", failure: { why: read.why, message: read.message } };
  }
  const firstBytes = await readAnswer(sent.body, 0, timeoutMs);
  if (firstBytes.kind === "failed") {
    observe({ kind: "failed" }, `its answer stayed silent or broke off (${firstBytes.message})`);
    return { kind: "failed", failure: { why: firstBytes.why, message: firstBytes.message } };
  }
  observe({ kind: "answer", status, source: "provider", headers: firsts, readsEveryBody: true });
  const prefix = firstBytes.kind === "whole" ? [firstBytes.body] : firstBytes.chunks;
  return {
    kind: "committed",
    status,
    headers,
    prefix,
    rest: firstBytes.kind === "whole" ? undefined : sent.body,
  };
}

type Read =
  | { kind: "whole"; body: Buffer }
  /** More than `limit` bytes: what was read, the stream paused after it. */
  | { kind: "over"; chunks: Buffer[] }
  | { kind: "failed"; why: "timeout" | "connect"; message: string };

/**
 * Reads the body until its end, or until more than `limit` bytes came (0: until the first bytes), within
 * `timeoutMs`. The stream is left paused when it was not read to its end.
 */
function readAnswer(body: Readable, limit: number, timeoutMs: number): Promise<Read> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (result: Read) => {
      clearTimeout(timer);
      body.off("data", onData);
      body.off("end", onEnd);
      body.off("error", onError);
      resolve(result);
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      if (size > limit) {
        body.pause();
        done({ kind: "over", chunks });
      }
    };
    const onEnd = () => done({ kind: "whole", body: Buffer.concat(chunks, size) });
    const onError = (error: Error) => {
      const code = (error as { code?: string }).code;
      done({
        kind: "failed",
        why: code === "UND_ERR_BODY_TIMEOUT" ? "timeout" : "connect",
        message: code ?? error.message,
      });
    };
    const timer = setTimeout(() => {
      body.destroy();
      done({ kind: "failed", why: "timeout", message: "no answer in time" });
    }, timeoutMs);
    body.on("data", onData);
    body.once("end", onEnd);
    body.once("error", onError);
  });
}

/** Sends the answer that stays back to Kong: its head and first bytes now, the rest as it arrives. */
function commit(
  res: ServerResponse,
  answerOf: Extract<Settled, { kind: "committed" }>,
  route: Route,
  attempts: number,
  config: RoundRobinConfig,
  observe: (observed: Parameters<typeof outcomeOf>[1], why?: string) => void,
): void {
  res.writeHead(answerOf.status, answerHeaders(answerOf.headers, ownHeaders(config, route, attempts)));
  for (const chunk of answerOf.prefix) res.write(chunk);
  const rest = answerOf.rest;
  if (rest === undefined) {
    res.end();
    return;
  }
  // pipe(), not pipeline(): Node 20's pipeline aborts an AbortController of its own at every end, which builds
  // an error with its stack for every answer. Each side's end is handled here instead.
  rest.on("error", (error: Error & { code?: string }) => {
    if (res.destroyed) return; // Kong went away first: the provider's stream was only torn down after it
    // The provider broke off mid-answer: Kong gets an answer cut short, the entry is benched for the next requests.
    observe({ kind: "failed" }, `its answer broke off after the first byte (${error.code ?? error.message})`);
    res.destroy(error);
  });
  res.on("close", () => {
    if (!res.writableFinished) rest.destroy();
  });
  rest.pipe(res);
}

function giveHeld(res: ServerResponse, held: Held, attempts: number, config: RoundRobinConfig): void {
  const own = ownHeaders(config, held.route, attempts);
  // The body read whole goes back whole, whatever framing the provider used.
  own.push("content-length", String(held.body.length));
  res.writeHead(held.status, answerHeaders(held.headers, own));
  res.end(held.body);
}

/** The plugin's own answer headers (the served and requested model, the attempts), names and values in turn. */
function ownHeaders(config: RoundRobinConfig, route: Route, attempts: number): string[] {
  const own: string[] = [];
  const models = modelHeaders(config.modelHeaders, route);
  if (models !== undefined) for (const name in models) own.push(name, models[name] as string);
  if (config.modelHeaders !== undefined) own.push(ATTEMPTS_HEADER, String(attempts));
  return own;
}

function attemptsHeader(config: RoundRobinConfig, attempts: number): Record<string, string> {
  return config.modelHeaders === undefined ? {} : { [ATTEMPTS_HEADER]: String(attempts) };
}

/** One of the plugin's own answers, counted with its refusals. */
function counted(config: RoundRobinConfig, refused: Refusal): Refusal {
  countRefusal(config.pluginId, errorCode(refused.body));
  return refused;
}

function answer(res: ServerResponse, refused: Refusal, extra: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  const response = errorResponse(refused.body, { ...refused.headers, ...extra });
  res.writeHead(refused.status, { ...response.headers, "content-length": Buffer.byteLength(response.body) });
  res.end(response.body);
}

type BodyRead = { kind: "ok"; body: Buffer } | { kind: "too-large"; size: number } | { kind: "aborted" };

/** The request body as Kong forwards it, up to `limit` bytes. */
function readBody(req: IncomingMessage, limit: number): Promise<BodyRead> {
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > limit) {
    req.resume();
    return Promise.resolve({ kind: "too-large", size: declared });
  }
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) chunks.push(chunk);
    });
    req.once("end", () =>
      resolve(size > limit ? { kind: "too-large", size } : { kind: "ok", body: Buffer.concat(chunks, size) }),
    );
    req.once("close", () => {
      if (!req.complete) resolve({ kind: "aborted" });
    });
  });
}

function requestHead(req: IncomingMessage, credentialHeaders: readonly string[]): RequestHead {
  const one = (name: string) => {
    const value = req.headers[name];
    return Array.isArray(value) ? value[0] : value;
  };
  return {
    contentLength: one("content-length"),
    transferEncoding: one("transfer-encoding"),
    host: one("host"),
    credentials: credentialsIn(credentialHeaders, req.headers),
  };
}

function relayRefused(why: string): OpenAiError {
  return {
    error: {
      message: `the model-based-round-robin relay refused the request: ${why}; it was not sent to any provider`,
      type: "server_error",
      param: null,
      code: "relay_refused",
    },
  };
}
