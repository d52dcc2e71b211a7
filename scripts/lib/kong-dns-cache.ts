/**
 * Kong's DNS client remembers a name that does not resolve for `dns_not_found_ttl` (30 s) and sends one query
 * for concurrent lookups of the same name; Node's dns.lookup asks the system resolver on every connection. A
 * service URL on a host that never resolves (`unrouted.model-based-round-robin.invalid`) then costs one query
 * per request, and a resolver that throttles bursts (as some sandboxes' do, answering after its 5 s timeout)
 * stalls every connection of a load run. This makes the process's dns.lookup answer ENOTFOUND from memory for a
 * name that was not found within the last `ttlMs`, and lets concurrent lookups of a name wait for the first.
 * Only not-found answers are kept; everything else is asked each time. Returns a function that undoes it.
 */
import dns = require("node:dns");

type Callback = (error: NodeJS.ErrnoException | null, ...rest: unknown[]) => void;

export function cacheNotFound(ttlMs = 30_000): () => void {
  const original = dns.lookup;
  const notFoundUntil = new Map<string, number>();
  const inFlight = new Map<string, (() => void)[]>();

  const notFound = (hostname: string): NodeJS.ErrnoException =>
    Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), {
      code: "ENOTFOUND",
      errno: -3008,
      syscall: "getaddrinfo",
      hostname,
    });

  function lookup(this: unknown, hostname: string, ...rest: unknown[]): void {
    const callback = rest[rest.length - 1] as Callback;
    const args = rest.slice(0, -1);
    const until = notFoundUntil.get(hostname);
    if (until !== undefined && until > Date.now()) {
      process.nextTick(() => callback(notFound(hostname)));
      return;
    }
    const waiting = inFlight.get(hostname);
    if (waiting !== undefined) {
      // Asked again once the first lookup has answered: from memory if it was not found.
      waiting.push(() => lookup.call(this, hostname, ...rest));
      return;
    }
    inFlight.set(hostname, []);
    (original as (...a: unknown[]) => void).call(
      this,
      hostname,
      ...args,
      (error: NodeJS.ErrnoException | null, ...result: unknown[]) => {
        if (error?.code === "ENOTFOUND") notFoundUntil.set(hostname, Date.now() + ttlMs);
        const queued = inFlight.get(hostname) ?? [];
        inFlight.delete(hostname);
        callback(error, ...result);
        for (const next of queued) next();
      },
    );
  }

  Object.assign(dns, { lookup });
  return () => Object.assign(dns, { lookup: original });
}
