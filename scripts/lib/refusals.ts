/**
 * What the refusal benches share (scripts/bench-refusals.ts, scripts/chaos.ts): the plugin's refusal of a body
 * of `{` (kong.response.exit(400)) sent N times through the Kong double, the declarative configuration it is
 * sent to, and the plugin server's status line read through `kill -USR2 <pid>`.
 */
import { join } from "node:path";
import { Agent, request } from "undici";
import type { KongDouble } from "../../kong-double";

export const PLUGIN = "model-based-round-robin";

/** kong-pdk's stock server with the status line (./stock-status-server), for the double's `serverBin`. */
export const stockStatusServerBin = (): string => join(__dirname, "stock-status-server.js");

export interface ServerStatus {
  events: number;
  heapUsed: number;
  rss: number;
}

/**
 * The plugin server's `status` line after `kill -USR2`; throws when the server wrote none within `timeoutMs`
 * (or is not running).
 */
export async function readStatus(kong: KongDouble, timeoutMs = 5000): Promise<ServerStatus> {
  const pid = kong.server(PLUGIN).pid;
  if (pid === undefined) throw new Error("the plugin server is not running");
  const seen = kong.logs.length;
  process.kill(pid, "SIGUSR2");
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; ) {
    for (const line of kong.logs.slice(seen)) {
      const match = / \[INFO\] status: (\{.*\})$/.exec(line.message);
      if (match !== null && line.message.includes(`:${pid}]`))
        return JSON.parse(match[1] as string) as ServerStatus;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error("the plugin server wrote no status line");
}

/** A service whose URL refuses connections, carrying the plugin on route /openai/v1. */
export function refusalConfig(): object {
  return {
    _format_version: "3.0",
    services: [
      {
        name: "llm",
        url: "http://127.0.0.1:9/v1",
        routes: [{ name: "chat", paths: ["/openai/v1"], strip_path: true }],
        plugins: [
          {
            name: PLUGIN,
            // The direct path: access reads the body and refuses it with kong.response.exit, the call that
            // leaked (through the relay, the default, the relay answers a bad body itself).
            config: {
              production_models: [{ model: "m", endpoint: "http://127.0.0.1:9/v1" }],
              failover_attempts: 0,
            },
          },
        ],
      },
    ],
  };
}

/**
 * Sends `count` bodies of `{` over `concurrency` connections; returns how many the plugin refused (400). Every
 * answer's status is added to `statuses` when given (0: the connection failed).
 */
export async function refuse(
  kong: KongDouble,
  count: number,
  concurrency: number,
  statuses?: Map<number, number>,
): Promise<number> {
  const agent = new Agent({ connections: concurrency });
  let sent = 0;
  let refused = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (sent < count) {
        sent++;
        let status = 0;
        try {
          const res = await request(`${kong.proxyUrl}/openai/v1/chat/completions`, {
            method: "POST",
            headers: { host: "api.example.test", "content-type": "application/json" },
            body: "{",
            dispatcher: agent,
          });
          await res.body.dump();
          status = res.statusCode;
        } catch {
          status = 0;
        }
        if (status === 400) refused++;
        statuses?.set(status, (statuses.get(status) ?? 0) + 1);
      }
    }),
  );
  await agent.close();
  return refused;
}
