/**
 * The failover's HTTP client against real sockets: what it makes of answers no well-behaved provider sends.
 */
import { createServer, type Server } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import type { Attempt } from "../../plugins/model-based-round-robin/core/failover";
import { MAX_ANSWER_BYTES, sendAttempt } from "../../plugins/model-based-round-robin/upstream";

let server: Server | undefined;
afterEach(() => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve())));

/** A TCP server that answers every request with `answer` (written raw), then leaves the socket to the peer. */
function rawServer(answer: (socket: import("node:net").Socket) => void): Promise<number> {
  return new Promise((resolve) => {
    const listening = createServer((socket) => {
      socket.once("data", () => answer(socket));
      socket.on("error", () => undefined);
    });
    server = listening;
    listening.listen(0, "127.0.0.1", () => resolve((listening.address() as { port: number }).port));
  });
}

const attempt = (port: number): Attempt => ({
  scheme: "http",
  host: "127.0.0.1",
  port,
  method: "POST",
  target: "/v1/chat/completions",
  headers: { host: "127.0.0.1", "content-length": "2" },
  body: Buffer.from("{}"),
  connectTimeoutMs: 2000,
  readTimeoutMs: 5000,
  deadlineMs: Date.now() + 10_000,
  tlsVerify: true,
});

describe("the failover's HTTP client", () => {
  it("takes an answer whose status Kong could not send (999) for a broken endpoint", async () => {
    const port = await rawServer((s) => s.end("HTTP/1.1 999 Odd\r\ncontent-length: 2\r\n\r\n{}"));
    expect(await sendAttempt(attempt(port))).toMatchObject({ kind: "failed", why: "connect" });
  });

  it("stops holding an answer past MAX_ANSWER_BYTES, without blaming the endpoint", async () => {
    const chunk = Buffer.alloc(1024 * 1024, 0x61);
    const port = await rawServer((s) => {
      s.write(`HTTP/1.1 200 OK\r\ncontent-length: ${MAX_ANSWER_BYTES + chunk.length}\r\n\r\n`);
      let sent = 0;
      const more = () => {
        while (sent <= MAX_ANSWER_BYTES && !s.destroyed) {
          sent += chunk.length;
          if (!s.write(chunk)) return void s.once("drain", more);
        }
      };
      more();
    });
    const result = await sendAttempt(attempt(port));
    expect(result).toMatchObject({ kind: "failed", why: "refused" });
  });

  it("reports a header Node will not send as the request's fault, and never throws", async () => {
    const port = await rawServer((s) => s.end("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"));
    const bad = { ...attempt(port), headers: { ...attempt(port).headers, "x-bad": "a\r\nb" } };
    expect(await sendAttempt(bad)).toMatchObject({ kind: "failed", why: "refused" });
  });
});
