/**
 * The measuring pieces `npm run bench` shares between its sections: a load run (autocannon in a process of its
 * own), a process's CPU time from /proc, a median.
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";

export interface Row {
  name: string;
  rps: number;
  p50: number;
  p99: number;
  errors: number;
}

export interface LoadOptions {
  /** Connections, each a closed loop (the next request when the answer is in). */
  clients: number;
  /** A run of this many requests... */
  count?: number;
  /** ...or of this many seconds. */
  seconds?: number;
  /** The request body: inline (small), or a file's content (autocannon's -i; an argument holds 128 KiB at most). */
  body: { text: string } | { file: string };
  /** autocannon's per-request timeout, s (its default is 10). */
  timeoutSeconds?: number;
}

/**
 * One autocannon run (POST, JSON) in a process of its own, so the load generator does not share an event loop
 * (or a core's time slices in the same process) with the double it measures.
 */
export function load(root: string, url: string, options: LoadOptions): Promise<Row & { requests: number }> {
  const { clients, count, seconds, body, timeoutSeconds = 10 } = options;
  const cli = resolve(root, "node_modules/autocannon/autocannon.js");
  const length = seconds === undefined ? ["-a", String(count ?? 1000)] : ["-d", String(seconds)];
  const args = [cli, "-j", "-c", String(clients), ...length, "-t", String(timeoutSeconds), "-m", "POST"];
  args.push("-H", "content-type=application/json");
  if ("text" in body) args.push("-b", body.text);
  else args.push("-i", body.file);
  args.push(url);
  return new Promise((done, fail) => {
    execFile(process.execPath, args, { maxBuffer: 64 * 1024 * 1024 }, (error, stdout) => {
      if (error) return fail(error);
      const result = JSON.parse(stdout) as {
        requests: { total: number };
        latency: { p50: number; p99: number; mean: number };
        errors: number;
        non2xx: number;
      };
      done({
        name: url,
        // Little's law for a closed loop of `clients` connections: autocannon ends an `amount` run on its
        // one-second tick, so its wall time (and requests.average) is quantised to whole seconds.
        rps: (clients * 1000) / result.latency.mean,
        p50: result.latency.p50,
        p99: result.latency.p99,
        errors: result.errors + result.non2xx,
        requests: result.requests.total,
      });
    });
  });
}

/** CPU time (user + system) of a process, in microseconds, from /proc (clock ticks of 10 ms). */
export function cpuMicros(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

export function median(list: number[]): number {
  if (list.length === 0) return Number.NaN;
  const sorted = [...list].sort((x, y) => x - y);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}
