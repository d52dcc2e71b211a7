/**
 * Sends one failover attempt (core/failover.ts decides everything else) over Node's own HTTP client, with
 * keep-alive connections shared by every request of this plugin server (as Kong keeps its upstream
 * connections), and reads the whole answer: the client gets it through kong.response.exit, in one piece.
 *
 * Never rejects: a connection failure, a timeout or the budget's end is a `failed` result.
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import type { Attempt, AttemptResult } from "./core/failover";

/**
 * The largest answer held for the client: the whole answer passes through this one process, which serves every
 * Kong worker, so a misbehaving endpoint must not be able to fill its memory.
 */
export const MAX_ANSWER_BYTES = 64 * 1024 * 1024;

/** Idle connections kept per provider host and port (Kong's upstream_keepalive_pool_size is 512 per pool). */
const MAX_FREE_SOCKETS = 256;

const agents = {
  http: new HttpAgent({ keepAlive: true, maxFreeSockets: MAX_FREE_SOCKETS }),
  // tls_verify: Node's default CA store (plus NODE_EXTRA_CA_CERTS); off, any certificate is taken.
  verified: new HttpsAgent({ keepAlive: true, maxFreeSockets: MAX_FREE_SOCKETS }),
  unverified: new HttpsAgent({
    keepAlive: true,
    maxFreeSockets: MAX_FREE_SOCKETS,
    rejectUnauthorized: false,
  }),
};

export function sendAttempt(attempt: Attempt): Promise<AttemptResult> {
  return sendOnce(attempt, true);
}

function sendOnce(attempt: Attempt, mayRetryStale: boolean): Promise<AttemptResult> {
  const https = attempt.scheme === "https";
  return new Promise((resolve) => {
    let settled = false;
    let answered = false;
    const timers: NodeJS.Timeout[] = [];
    const settle = (result: AttemptResult | Promise<AttemptResult>) => {
      if (settled) return;
      settled = true;
      for (const timer of timers) clearTimeout(timer);
      resolve(result);
    };
    let req: ReturnType<typeof httpRequest>;
    try {
      req = (https ? httpsRequest : httpRequest)({
        host: attempt.host,
        port: attempt.port,
        method: attempt.method,
        path: attempt.target,
        headers: attempt.headers,
        setHost: false,
        agent: https ? (attempt.tlsVerify ? agents.verified : agents.unverified) : agents.http,
      });
    } catch (error) {
      // A header or path Node will not send (a control character): the request's fault, not the endpoint's.
      settle({ kind: "failed", why: "refused", message: `request not sent: ${(error as Error).message}` });
      return;
    }
    const fail = (why: "connect" | "timeout" | "budget", message: string, during?: "connect" | "read") => {
      if (settled) return; // a connection handed back to the pool must not be touched
      settle({ kind: "failed", why, message, ...(during !== undefined && { during }) });
      req.destroy();
    };
    timers.push(
      setTimeout(
        () => fail("budget", "no answer before the failover budget ran out"),
        Math.max(0, attempt.deadlineMs - Date.now()),
      ),
    );
    const connectTimer = setTimeout(
      () => fail("timeout", "timed out connecting", "connect"),
      attempt.connectTimeoutMs,
    );
    timers.push(connectTimer);
    req.on("socket", (socket) => {
      if (!socket.connecting) clearTimeout(connectTimer);
      else socket.once(https ? "secureConnect" : "connect", () => clearTimeout(connectTimer));
    });
    // The socket's idle time: waiting for the head after sending, and between two reads of the body.
    req.setTimeout(attempt.readTimeoutMs, () => fail("timeout", "timed out reading the answer", "read"));
    req.on("response", (res: IncomingMessage) => {
      answered = true;
      // Kong can only answer 100-599 (kong.response.exit raises otherwise); nginx calls such a peer broken.
      const status = res.statusCode ?? 0;
      if (status < 100 || status > 599) {
        fail("connect", `invalid status ${status} in the answer`);
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on("data", (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_ANSWER_BYTES) {
          if (!settled) {
            settle({ kind: "failed", why: "refused", message: `answer over ${MAX_ANSWER_BYTES} bytes` });
            req.destroy();
          }
          return;
        }
        chunks.push(chunk);
      });
      res.on("end", () => {
        settle({
          kind: "answer",
          status,
          headers: headersOf(res),
          body: Buffer.concat(chunks),
        });
      });
      res.on("error", (error) => fail("connect", `answer cut short: ${error.message}`));
      res.on("aborted", () => fail("connect", "answer cut short"));
    });
    req.on("error", (error: NodeJS.ErrnoException) => {
      if (settled) return;
      // A kept-alive connection the provider closed meanwhile: once more on a fresh one (nginx does not count
      // such a failure either), never after an answer began.
      if (mayRetryStale && req.reusedSocket && !answered && error.code === "ECONNRESET") {
        settle(sendOnce(attempt, false));
        return;
      }
      settle({ kind: "failed", why: "connect", message: error.code ?? error.message });
    });
    req.end(attempt.body);
  });
}

function headersOf(res: IncomingMessage): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (let i = 0; i < res.rawHeaders.length; i += 2) {
    const name = (res.rawHeaders[i] as string).toLowerCase();
    const value = res.rawHeaders[i + 1] as string;
    const existing = out[name];
    out[name] =
      existing === undefined ? value : [...(Array.isArray(existing) ? existing : [existing]), value];
  }
  return out;
}
