/**
 * What access hands the relay with a request: its decision, kept in this process under a single-use ticket.
 * Access and the relay live in the same plugin server, so only the ticket travels, in one request header Kong
 * forwards to the relay. A ticket is an id and 16 random bytes; the relay takes the decision out once (a second
 * use, a forged or an old ticket finds nothing), and compares the random part in constant time, so a request
 * that did not come through access (anything else on the host that can reach the loopback port, or a ticket
 * read back from a log line) reaches no provider.
 *
 * Tickets Kong never forwards (a later plugin answered, the client went away) are dropped after TICKET_TTL_MS,
 * and at most MAX_PENDING wait at once (the oldest go first), so the map stays bounded whatever happens.
 */
import { randomBytes, timingSafeEqual } from "node:crypto";
import type { Environment } from "../core/config";

/** The request header carrying the ticket from Kong to the relay (removed before anything goes on). */
export const TICKET_HEADER = "x-model-based-round-robin-relay";
/** Longer than Kong takes to read a slow client's body before it proxies (client_body_timeout is 60 s). */
const TICKET_TTL_MS = 10 * 60 * 1000;
const MAX_PENDING = 100_000;
const SECRET_BYTES = 16;

/** Access's decision for one request, as the relay carries it out. */
export interface Decision {
  pluginId: string;
  env: Environment;
  /** The entry access chose: the first attempt's (its turn in the rotation is already taken). */
  entryKey: string;
  /** The service's path, which Kong put in front of the path it forwards (stripped to find the route's). */
  servicePath: string | undefined;
  /** The service's timeouts (ms), which every attempt keeps as Kong's own proxying would. */
  connectTimeoutMs: number;
  readTimeoutMs: number;
}

interface Pending {
  secret: Buffer;
  decision: Decision;
  issuedMs: number;
}

const pending = new Map<string, Pending>();
let nextId = 0;
let pool = Buffer.alloc(0);

/** Keeps the decision and returns the header value that takes it out again, once. */
export function issueTicket(decision: Decision, nowMs = Date.now()): string {
  if (pending.size >= MAX_PENDING) dropOldest(nowMs);
  const id = (nextId++).toString(36);
  const secret = nextSecret();
  pending.set(id, { secret, decision, issuedMs: nowMs });
  return `${id}.${secret.toString("base64url")}`;
}

/** The decision behind the ticket, taken out for good; undefined for anything that is not a live ticket. */
export function takeTicket(value: string | string[] | undefined, nowMs = Date.now()): Decision | undefined {
  if (typeof value !== "string") return undefined;
  const dot = value.indexOf(".");
  if (dot <= 0) return undefined;
  const id = value.slice(0, dot);
  const kept = pending.get(id);
  if (kept === undefined) return undefined;
  const given = Buffer.from(value.slice(dot + 1), "base64url");
  if (given.length !== SECRET_BYTES || !timingSafeEqual(given, kept.secret)) return undefined;
  pending.delete(id);
  return nowMs - kept.issuedMs > TICKET_TTL_MS ? undefined : kept.decision;
}

/** Tickets waiting for the relay (for tests and the status of the relay). */
export function pendingTickets(): number {
  return pending.size;
}

/** When full, this many of the oldest go at once: a full map is not walked again for every new ticket. */
const DROP_BATCH = MAX_PENDING / 100;

function dropOldest(nowMs: number): void {
  // Insertion order is issue order: expired ones first, then the oldest until there is room for a batch.
  const room = pending.size >= MAX_PENDING ? MAX_PENDING - DROP_BATCH : MAX_PENDING;
  for (const [id, kept] of pending) {
    if (pending.size < room && nowMs - kept.issuedMs <= TICKET_TTL_MS) break;
    pending.delete(id);
  }
}

// Expired tickets go even when no new ones are issued.
setInterval(() => dropOldest(Date.now()), 60_000).unref();

/** 16 random bytes, cut from a pooled buffer: one randomBytes call serves 256 tickets. */
function nextSecret(): Buffer {
  if (pool.length < SECRET_BYTES) pool = randomBytes(SECRET_BYTES * 256);
  const secret = pool.subarray(0, SECRET_BYTES);
  pool = pool.subarray(SECRET_BYTES);
  return secret;
}
