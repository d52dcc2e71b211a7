/**
 * The relay's HTTP client against real sockets: what it makes of peers no well-behaved provider is.
 */
import { createServer, type Server, type Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { type Attempt, Stop, send } from "../../plugins/model-based-round-robin/relay/send";

let server: Server | undefined;
afterEach(() => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve())));

/** A TCP server that answers every request with `answer` (written raw), then leaves the socket to the peer. */
function rawServer(answer: (socket: Socket) => void): Promise<number> {
  return new Promise((resolve) => {
    const listening = createServer((socket) => {
      socket.once("data", () => answer(socket));
      socket.on("error", () => undefined);
    });
    server = listening;
    listening.listen(0, "127.0.0.1", () => resolve((listening.address() as { port: number }).port));
  });
}

const attempt = (port: number, extra: Partial<Attempt> = {}): Attempt => ({
  scheme: "http",
  host: "127.0.0.1",
  port,
  method: "POST",
  target: "/v1/chat/completions",
  headers: ["host", "127.0.0.1"],
  body: Buffer.from("{}"),
  connectTimeoutMs: 2000,
  headTimeoutMs: 5000,
  readTimeoutMs: 5000,
  tlsVerify: true,
  signal: new Stop(),
  ...extra,
});

describe("the relay's HTTP client", () => {
  it("hands back the head with the body unread, as a stream", async () => {
    const port = await rawServer((s) => s.end("HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-a: 1\r\n\r\nok"));
    const sent = await send(attempt(port));
    expect(sent).toMatchObject({ kind: "answer", status: 200, headers: { "x-a": "1" } });
    if (sent.kind === "answer") expect(Buffer.concat(await sent.body.toArray()).toString()).toBe("ok");
  });

  it("takes an answer whose status Kong could not send (999) for a broken endpoint", async () => {
    const port = await rawServer((s) => s.end("HTTP/1.1 999 Odd\r\ncontent-length: 2\r\n\r\n{}"));
    expect(await send(attempt(port))).toMatchObject({ kind: "failed", why: "connect" });
  });

  it("calls a head that does not come within headTimeoutMs a timeout", async () => {
    const port = await rawServer((s) => s.write("HTTP/1.1 200 OK\r\n"));
    expect(await send(attempt(port, { headTimeoutMs: 200 }))).toMatchObject({
      kind: "failed",
      why: "timeout",
    });
  });

  it("calls a refused connection a connection failure, and an abort an abort", async () => {
    const port = await rawServer((s) => s.destroy());
    const closed = await new Promise<number>((r) => server?.close(() => r(port)));
    server = undefined;
    expect(await send(attempt(closed))).toMatchObject({ kind: "failed", why: "connect" });
    const aborted = new Stop();
    aborted.abort();
    const other = await rawServer(() => undefined);
    expect(await send(attempt(other, { signal: aborted }))).toMatchObject({
      kind: "failed",
      why: "aborted",
    });
  });

  it("ends an attempt aborted while it waits for the head, and leaves no listener on the Stop", async () => {
    const port = await rawServer(() => undefined); // never answers
    const stop = new Stop();
    const sent = send(attempt(port, { signal: stop }));
    setTimeout(() => stop.abort(), 50);
    expect(await sent).toMatchObject({ kind: "failed", why: "aborted" });
    expect(stop.listenerCount("abort")).toBe(0);
  });

  it("leaves no listener on the Stop after an answer, so one Stop serves a request's attempts", async () => {
    const port = await rawServer((s) => s.end("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"));
    const stop = new Stop();
    const sent = await send(attempt(port, { signal: stop }));
    if (sent.kind === "answer") await sent.body.toArray();
    expect(sent.kind).toBe("answer");
    expect(stop.listenerCount("abort")).toBe(0);
  });

  it("reports a header it will not send as the request's fault, and never throws", async () => {
    const port = await rawServer((s) => s.end("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"));
    const sent = await send(attempt(port, { headers: ["x-bad", "a\r\nb"] }));
    expect(sent).toMatchObject({ kind: "failed", why: "refused" });
  });
});
