/**
 * Reading the project's plugin server from outside, as an operator would: `kill -USR2 <pid>` makes it log one
 * `status: {...}` line (events map size, instances, heap), which the Kong double collects with the rest of the
 * server's output.
 */
import type { KongDouble } from "../../kong-double";

export interface ServerStatus {
  events: number;
  awaitingKong: number;
  instances: number;
  endedByExit: number;
  abandonedCalls: number;
  heapUsed: number;
  rss: number;
}

export async function serverStatus(kong: KongDouble, name: string): Promise<ServerStatus> {
  const server = kong.server(name);
  const pid = server.pid;
  if (pid === undefined) throw new Error(`plugin server ${name} is not running`);
  const seen = kong.logs.length;
  process.kill(pid, "SIGUSR2");
  const deadline = Date.now() + 5000;
  for (;;) {
    for (const line of kong.logs.slice(seen)) {
      const match = /\[[^:\]]+:(\d+)\] \S+ \[INFO\] status: (\{.*\})$/.exec(line.message);
      if (match !== null && Number(match[1]) === pid) return JSON.parse(match[2] as string) as ServerStatus;
    }
    if (Date.now() > deadline) throw new Error(`no status line from ${name} (pid ${pid})`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export async function waitFor<T>(
  read: () => Promise<T>,
  done: (value: T) => boolean,
  timeoutMs: number,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value) || Date.now() > deadline) return value;
    await new Promise((r) => setTimeout(r, 100));
  }
}
