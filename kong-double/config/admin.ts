/**
 * The Admin API's HTTP listener: parses the request (JSON, a form (admin-form.ts), or the raw text for a YAML
 * declarative config) and
 * hands it to the pure Admin API handler (admin-api.ts), which speaks Kong's endpoints and error shapes.
 */
import { createServer, type Server } from "node:http";
import { type ListenAt, listen } from "../listen";
import type { AdminApi } from "./admin-api";
import { type FormBody, readForm } from "./admin-form";

export async function startAdmin(
  api: AdminApi,
  at: ListenAt = {},
): Promise<{ server: Server; url: string; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const url = new URL(req.url ?? "/", "http://admin");
      const raw = Buffer.concat(chunks);
      const text = raw.toString("utf8");
      let body: unknown;
      try {
        body = text === "" ? undefined : JSON.parse(text);
      } catch {
        body = text;
      }
      readForm(req.headers["content-type"] ?? "", raw)
        .catch((): FormBody | undefined => undefined)
        .then((form) =>
          api({
            method: req.method ?? "GET",
            path: url.pathname,
            query: url.searchParams,
            body: form === undefined ? body : undefined,
            ...(form && { form }),
          }),
        )
        .then(
          ({ status, body: out }) => {
            const payload = out === undefined ? "" : JSON.stringify(out);
            res.writeHead(status, {
              "content-type": "application/json; charset=utf-8",
              "content-length": Buffer.byteLength(payload),
            });
            res.end(payload);
          },
          (error: unknown) => {
            const payload = JSON.stringify({
              message: `An unexpected error occurred: ${(error as Error).message}`,
            });
            res.writeHead(500, { "content-type": "application/json; charset=utf-8" });
            res.end(payload);
          },
        );
    });
  });
  const url = await listen(server, at, "Admin API");
  return {
    server,
    url,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
