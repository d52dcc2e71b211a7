/**
 * Failover within the request, decided without I/O: the relay (../relay/) sends a request to the entry access
 * chose and, while no byte of an answer has gone back to Kong, on to the next untried entry of the rotation when
 * the answer fails over (a status in failover_on_statuses, no connection, a timeout). This module says what
 * each attempt sends (headers), what Kong gets back (headers), and the relay's own answer when no provider
 * answered. What an answer does to its entry is core/outcome.ts's rule, the same as the log phase's.
 */
import type { Entry } from "./config";
import type { OpenAiError } from "./openai-error";
import type { Refusal } from "./routing";

/** The response header telling the client how many entries its request was sent to. */
export const ATTEMPTS_HEADER = "X-Kong-LLM-Attempts";

/** Hop-by-hop headers (RFC 9110 §7.6.1, and those HTTP/1.1 peers use alike): never passed on either way. */
const HOP_BY_HOP = [
  "connection",
  "keep-alive",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
];

/**
 * Request headers never forwarded as Kong sent them to the relay: hop-by-hop ones, those the relay sets itself
 * (Host, Content-Length: it sends the body it holds) and Expect (Upgrade is never a WebSocket here).
 */
const NOT_FORWARDED = new Set([...HOP_BY_HOP, "host", "content-length", "expect"]);

/** Answer headers not passed back to Kong as the provider sent them: hop-by-hop ones, as nginx drops them. */
const NOT_PASSED_BACK = new Set(HOP_BY_HOP);

/**
 * The headers an attempt sends, as a flat list of names and values (the bytes Kong sent, duplicates kept): the
 * request's, minus hop-by-hop ones, the relay's ticket (`dropped`) and the client's own credentials the route
 * clears (when the entry sends its key); then Host = the entry's host (no port, as Kong's set_target makes it) and the entry's key.
 */
export function attemptHeaders(
  raw: readonly string[],
  entry: Entry,
  dropped: ReadonlySet<string>,
  clearHeaders: readonly string[],
): string[] {
  const own = entry.authHeader;
  const ownName = own?.name.toLowerCase();
  const named = new Set<string>();
  for (let i = 0; i < raw.length; i += 2) {
    if ((raw[i] as string).toLowerCase() !== "connection") continue;
    for (const token of (raw[i + 1] as string).split(",")) named.add(token.trim().toLowerCase());
  }
  const cleared = new Set(clearHeaders);
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = (raw[i] as string).toLowerCase();
    if (NOT_FORWARDED.has(name) || named.has(name) || dropped.has(name) || cleared.has(name)) continue;
    if (name === ownName) continue;
    out.push(raw[i] as string, raw[i + 1] as string);
  }
  out.push("host", entry.host.includes(":") ? `[${entry.host}]` : entry.host);
  if (own !== undefined) out.push(own.name, own.value);
  return out;
}

/**
 * The answer's head Kong gets, as a flat list of names and values (Node's writeHead takes one as it is): the
 * provider's headers but the hop-by-hop ones and those the plugin sets itself (`own`, names and values in turn,
 * whatever case either side wrote them in), then the plugin's own.
 */
export function answerHeaders(
  provider: Record<string, string | string[] | undefined>,
  own: readonly string[],
): (string | string[])[] {
  const out: (string | string[])[] = [];
  for (const name in provider) {
    const value = provider[name];
    if (value === undefined) continue;
    const lower = name.toLowerCase();
    if (NOT_PASSED_BACK.has(lower) || namesIn(own, lower)) continue;
    out.push(name, value);
  }
  for (const item of own) out.push(item);
  return out;
}

function namesIn(list: readonly string[], lower: string): boolean {
  for (let i = 0; i < list.length; i += 2) if ((list[i] as string).toLowerCase() === lower) return true;
  return false;
}

/** How the last attempt failed, when no provider answered at all. */
export type AttemptFailure = "connect" | "timeout" | "budget";

/** No provider answered at all: 504 when the last attempt timed out (or the budget ran out), else 502. */
export function unreachableRefusal(
  why: AttemptFailure | undefined,
  message: string,
  budgetMs: number,
): Refusal {
  const timedOut = why === "timeout" || why === "budget";
  const text =
    why === "budget"
      ? `no provider answered within the failover budget of ${budgetMs / 1000} s (failover_timeout)`
      : timedOut
        ? "the provider did not answer in time"
        : `the provider could not be reached: ${message}`;
  const body: OpenAiError = {
    error: {
      message: text,
      type: "server_error",
      param: null,
      code: timedOut ? "upstream_timeout" : "upstream_unreachable",
    },
  };
  return { kind: "refuse", status: timedOut ? 504 : 502, body };
}
