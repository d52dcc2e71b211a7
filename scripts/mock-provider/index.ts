/**
 * A mock OpenAI-compatible provider on a real HTTP listener: `POST .../chat/completions` answers JSON or SSE
 * (`"stream": true`, chunks spaced in time) and echoes the model it was asked for; failures (429 with given
 * headers and body, 5xx, delays) can be queued; requests are recorded for assertions, the newest ones up to
 * `recordBytes` of bodies (a load run would otherwise keep every body: at 1 MB each the process spent its time in
 * garbage collection within a minute and slowed whatever it was measured against). The same control functions
 * are reachable over HTTP under /__mock/ for the docker-compose demo.
 */
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { gzipSync } from "node:zlib";

export interface RecordedRequest {
  method: string;
  path: string;
  query: string;
  headers: Record<string, string | undefined>;
  body: Buffer;
  json?: unknown;
  receivedAt: number;
}

export interface Failure {
  status: number;
  headers?: Record<string, string>;
  body?: unknown;
  /** How many requests get this answer (default 1). */
  times?: number;
  /** Only requests asking for this model. */
  model?: string;
  delayMs?: number;
  /** Gzip the body when the request accepts gzip, as OpenAI's servers do. */
  gzip?: boolean;
}

export interface MockProviderOptions {
  name?: string;
  port?: number;
  host?: string;
  streamChunkDelayMs?: number;
  /** Bodies kept in `requests`, newest first to stay (default 64 MiB; the oldest go past it). */
  recordBytes?: number;
}

const DEFAULT_RECORD_BYTES = 64 * 1024 * 1024;

export interface MockProvider {
  readonly name: string;
  readonly url: string;
  readonly port: number;
  readonly requests: RecordedRequest[];
  failNext(failure: Failure): void;
  setDefault(defaults: { headers?: Record<string, string>; delayMs?: number }): void;
  reset(): void;
  clearRequests(): void;
  close(): Promise<void>;
}

export async function startMockProvider(opts: MockProviderOptions = {}): Promise<MockProvider> {
  const name = opts.name ?? "mock-provider";
  const streamChunkDelayMs = opts.streamChunkDelayMs ?? 50;
  const requests: RecordedRequest[] = [];
  const recordBytes = opts.recordBytes ?? DEFAULT_RECORD_BYTES;
  let recordedBytes = 0;
  let failures: (Failure & { left: number })[] = [];
  let defaults: { headers?: Record<string, string>; delayMs?: number } = {};
  const sockets = new Set<Socket>();

  const control = {
    failNext(failure: Failure) {
      failures.push({ ...failure, left: failure.times ?? 1 });
    },
    setDefault(next: typeof defaults) {
      defaults = next;
    },
    reset() {
      failures = [];
      defaults = {};
    },
    clearRequests() {
      requests.length = 0;
      recordedBytes = 0;
    },
  };

  /** Drops the oldest requests until the bodies kept fit (the newest always stays), in one splice. */
  function forgetOldest(): void {
    let drop = 0;
    while (recordedBytes > recordBytes && drop < requests.length - 1) {
      recordedBytes -= (requests[drop] as RecordedRequest).body.length;
      drop++;
    }
    requests.splice(0, drop);
  }

  async function handle(req: IncomingMessage, res: ServerResponse, body: Buffer): Promise<void> {
    const url = new URL(req.url ?? "/", "http://mock");
    if (url.pathname.startsWith("/__mock/")) return controlEndpoint(url.pathname, body, res);

    let json: unknown;
    try {
      json = body.length > 0 ? JSON.parse(body.toString("utf8")) : undefined;
    } catch {
      json = undefined;
    }
    const headers: Record<string, string | undefined> = {};
    for (const [k, v] of Object.entries(req.headers)) headers[k] = Array.isArray(v) ? v.join(", ") : v;
    requests.push({
      method: req.method ?? "GET",
      path: url.pathname,
      query: url.search.slice(1),
      headers,
      body,
      ...(json !== undefined && { json }),
      receivedAt: Date.now(),
    });
    recordedBytes += body.length;
    if (recordedBytes > recordBytes) forgetOldest();

    const model =
      typeof (json as { model?: unknown })?.model === "string" ? (json as { model: string }).model : "";
    if (defaults.delayMs) await sleep(defaults.delayMs);
    const failure = failures.find((f) => f.model === undefined || f.model === model);
    if (failure !== undefined) {
      failure.left--;
      if (failure.left <= 0) failures = failures.filter((f) => f !== failure);
      if (failure.delayMs) await sleep(failure.delayMs);
      const failBody = failure.body ?? {
        error: { message: `${name}: simulated ${failure.status}`, type: "requests", param: null, code: null },
      };
      const gzip = failure.gzip === true && /\bgzip\b/.test(req.headers["accept-encoding"] ?? "");
      return send(res, failure.status, failBody, { ...defaults.headers, ...failure.headers }, gzip);
    }

    if (req.method === "POST" && url.pathname.endsWith("/chat/completions")) {
      if (json === undefined || typeof json !== "object" || json === null) {
        return send(
          res,
          400,
          openAiError("We could not parse the JSON body of your request.", "invalid_request_error"),
        );
      }
      if ((json as { stream?: unknown }).stream === true) return stream(res, model);
      return send(res, 200, completion(model), defaults.headers);
    }
    if (req.method === "GET" && url.pathname.endsWith("/models")) {
      return send(res, 200, {
        object: "list",
        data: [{ id: "mock-model", object: "model", owned_by: name }],
      });
    }
    return send(
      res,
      404,
      openAiError(`Unknown request URL: ${req.method} ${url.pathname}`, "invalid_request_error"),
    );
  }

  function completion(model: string) {
    return {
      id: `chatcmpl-${randomUUID()}`,
      object: "chat.completion",
      created: Math.floor(Date.now() / 1000),
      model,
      choices: [
        {
          index: 0,
          message: { role: "assistant", content: `Hello from ${model} via ${name}` },
          finish_reason: "stop",
        },
      ],
      usage: { prompt_tokens: 5, completion_tokens: 6, total_tokens: 11 },
    };
  }

  async function stream(res: ServerResponse, model: string): Promise<void> {
    res.writeHead(200, {
      "content-type": "text/event-stream",
      "cache-control": "no-cache",
      "x-mock-provider": name,
      ...defaults.headers,
    });
    const id = `chatcmpl-${randomUUID()}`;
    const words = ["Hello", " from", ` ${model}`, ` via ${name}`];
    const chunk = (delta: object, finish: string | null) =>
      `data: ${JSON.stringify({ id, object: "chat.completion.chunk", created: 0, model, choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
    res.write(chunk({ role: "assistant", content: "" }, null));
    for (const word of words) {
      await sleep(streamChunkDelayMs);
      res.write(chunk({ content: word }, null));
    }
    await sleep(streamChunkDelayMs);
    res.write(chunk({}, "stop"));
    res.end("data: [DONE]\n\n");
  }

  function controlEndpoint(path: string, body: Buffer, res: ServerResponse): void {
    try {
      const input = body.length > 0 ? JSON.parse(body.toString("utf8")) : {};
      if (path === "/__mock/fail") control.failNext(input as Failure);
      else if (path === "/__mock/default") control.setDefault(input);
      else if (path === "/__mock/reset") control.reset();
      else if (path === "/__mock/requests") {
        return send(
          res,
          200,
          requests.map((r) => ({ ...r, body: r.body.toString("utf8") })),
        );
      } else return send(res, 404, openAiError(`unknown control path ${path}`, "invalid_request_error"));
      send(res, 200, { ok: true });
    } catch (error) {
      send(
        res,
        400,
        openAiError(`control body is not JSON: ${(error as Error).message}`, "invalid_request_error"),
      );
    }
  }

  function send(
    res: ServerResponse,
    status: number,
    body: unknown,
    headers: Record<string, string> = {},
    gzip = false,
  ): void {
    const bytes = gzip ? gzipSync(JSON.stringify(body)) : Buffer.from(JSON.stringify(body), "utf8");
    res.writeHead(status, {
      "content-type": "application/json",
      "content-length": bytes.length,
      ...(gzip && { "content-encoding": "gzip" }),
      "x-request-id": randomUUID(),
      "x-mock-provider": name,
      ...headers,
    });
    res.end(bytes);
  }

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      handle(req, res, Buffer.concat(chunks)).catch((error: unknown) => {
        if (!res.headersSent) send(res, 500, openAiError(String(error), "server_error"));
        else res.destroy();
      });
    });
  });
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    // A port in use rejects (with the listen error) instead of crashing the process.
    server.once("error", reject);
    server.listen(opts.port ?? 0, opts.host ?? "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;

  return {
    name,
    url: `http://${opts.host ?? "127.0.0.1"}:${port}`,
    port,
    requests,
    ...control,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

function openAiError(message: string, type: string) {
  return { error: { message, type, param: null, code: null } };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
