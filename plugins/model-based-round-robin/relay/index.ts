/**
 * The relay's place in the plugin server: started once per process, when Kong starts the first instance of a
 * configuration with failover on (never when the module is loaded: the query command loads it too), at the
 * address in MODEL_BASED_ROUND_ROBIN_RELAY_LISTEN (`host:port`, default 127.0.0.1 on a free port: access and
 * the relay share this process, so access always knows the port). Every instance registers its configuration
 * here; the relay serves the latest one of each plugin id.
 */
import type { Balancer } from "../core/balancer";
import type { RoundRobinConfig } from "../core/config";
import { knownConfigs } from "../core/metrics";
import { type ListenAddress, parseListenAddress } from "../status/address";
import { createRelay, type Log, type Served } from "./server";

export const RELAY_LISTEN_ENV = "MODEL_BASED_ROUND_ROBIN_RELAY_LISTEN";
const DEFAULT_LISTEN = "127.0.0.1:0";

export { TICKET_HEADER } from "./tickets";

const served = new Map<string, Served>();

type RelayState =
  | { kind: "idle" }
  | { kind: "starting"; ready: Promise<ListenAddress | undefined> }
  | { kind: "up"; address: ListenAddress }
  | { kind: "off" };

let state: RelayState = { kind: "idle" };

/**
 * The relay serves this configuration from now on (replacing an older one of the same plugin id). Kong never
 * says that a plugin was deleted: a configuration the balancer forgot as idle (core/metrics.ts knownConfigs) is
 * dropped here too, at the same cheap moment, when an instance starts.
 */
export function serveThroughRelay(config: RoundRobinConfig, balancer: Balancer): void {
  const known = knownConfigs();
  for (const pluginId of served.keys()) if (!known.has(pluginId)) served.delete(pluginId);
  served.set(config.pluginId, { config, balancer });
}

/**
 * Where Kong sends relayed requests: the address once the relay listens, a promise while it starts, undefined
 * when it could not start (the plugin then proxies directly, without failover, and said why once).
 */
export function relayAddress(
  env: Record<string, string | undefined>,
  log: Log,
): ListenAddress | Promise<ListenAddress | undefined> | undefined {
  switch (state.kind) {
    case "up":
      return state.address;
    case "off":
      return undefined;
    case "starting":
      return state.ready;
    case "idle": {
      const ready = start(env, log);
      state = { kind: "starting", ready };
      return ready;
    }
  }
}

async function start(env: Record<string, string | undefined>, log: Log): Promise<ListenAddress | undefined> {
  const value = env[RELAY_LISTEN_ENV]?.trim() || DEFAULT_LISTEN;
  const address = parseListenAddress(value);
  if (typeof address === "string") {
    log(
      `${RELAY_LISTEN_ENV}=${JSON.stringify(value.slice(0, 200))}: ${address}; failover is off (direct proxying)`,
    );
    state = { kind: "off" };
    return undefined;
  }
  const server = createRelay((pluginId) => served.get(pluginId), log);
  return new Promise((resolve) => {
    server.once("error", (error) => {
      log(`relay: could not listen on ${value} (${error.message}); failover is off (direct proxying)`);
      state = { kind: "off" };
      resolve(undefined);
    });
    // A deep accept queue: a burst of Kong's connections must not be refused (the kernel caps it at somaxconn).
    server.listen({ port: address.port, host: address.host, backlog: 4096 }, () => {
      const bound = server.address();
      const port = typeof bound === "object" && bound !== null ? bound.port : address.port;
      const up = { host: address.host, port };
      server.on("error", (error) => log(`relay: ${error.message}`));
      state = { kind: "up", address: up };
      resolve(up);
    });
  });
}
