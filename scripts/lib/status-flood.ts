/**
 * A flood of GETs on the status listener, run as a process of its own (`npm run chaos` part 6 forks it), so that
 * the flood's own sockets do not slow the Kong double that shares the chaos process: what is measured is the
 * plugin server's answer to the flood. `count` GETs kept in flight, half /status, half /metrics, each on a fresh
 * connection, until the parent says stop; then the tally goes back to the parent.
 *
 *   node dist/scripts/lib/status-flood.js <base URL> <count>
 */
import { get } from "node:http";

export interface FloodTally {
  answered: number;
  closed: number;
}

function flood(base: string, count: number): void {
  const tally: FloodTally = { answered: 0, closed: 0 };
  const { hostname, port } = new URL(base);
  let stopped = false;
  const one = (path: string) =>
    new Promise<void>((done) => {
      const req = get({ hostname, port, path, agent: false }, (res) => {
        res.resume();
        res.on("end", () => {
          tally.answered++;
          done();
        });
        res.on("error", () => {
          tally.closed++;
          done();
        });
      });
      req.on("error", () => {
        tally.closed++;
        done();
      });
    });
  const workers = Array.from({ length: count }, async (_, i) => {
    while (!stopped) await one(i % 2 === 0 ? "/status" : "/metrics");
  });
  process.on("message", () => {
    stopped = true;
    void Promise.all(workers).then(() => process.send?.(tally, () => process.exit(0)));
  });
  process.send?.("started");
}

if (require.main === module) flood(process.argv[2] ?? "", Number(process.argv[3] ?? "1000"));
