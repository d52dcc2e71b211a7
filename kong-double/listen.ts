/**
 * Where the double's proxy and Admin API listen: any free port on loopback by default (tests), or a fixed
 * address (`npm start` takes Kong's 8000 and 8001). A port in use rejects with a sentence saying so.
 */
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface ListenAt {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0: any free port. */
  port?: number;
}

/** Listens and resolves with the URL clients use (`0.0.0.0` and `::` are reached on loopback). */
export function listen(server: Server, at: ListenAt = {}, what = "listener"): Promise<string> {
  const host = at.host ?? "127.0.0.1";
  return new Promise((resolve, reject) => {
    const failed = (error: NodeJS.ErrnoException) => {
      const why = error.code === "EADDRINUSE" ? "the port is in use" : error.message;
      reject(new Error(`the ${what} could not listen on ${host}:${at.port ?? 0}: ${why} (${error.code})`));
    };
    server.once("error", failed);
    server.listen(at.port ?? 0, host, () => {
      server.off("error", failed);
      const { port } = server.address() as AddressInfo;
      const shown =
        host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host.includes(":") ? `[${host}]` : host;
      resolve(`http://${shown}:${port}`);
    });
  });
}
