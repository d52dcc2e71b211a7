/**
 * Configurations Kong accepts and the plugin cannot serve: the answers for them, and one of them decided here.
 *
 * Whether Kong can reach an entry from the service the request was routed to. Kong's balancer decides from the
 * service's host, before any plugin runs, whether the target is a name to resolve: kong/runloop/handler.lua
 * `balancer_prepare` stores the service host's `hostname_type` in `balancer_data.type`, and
 * kong.service.set_target (kong/pdk/service.lua) changes only `balancer_data.host` and `.port`. With an IP
 * address there, kong/runloop/balancer/init.lua `execute` takes the host as the IP without resolving it, and
 * nginx refuses a name as a peer (kong/init.lua `Kong.balancer`: set_current_peer fails with "no host
 * allowed", then ngx.exit(500)). So a service with an IP host and an endpoint with a host name fail every
 * request with Kong's bare 500 (Kong 3.9.1, both routers, http and https). A service host name works with
 * both kinds of endpoint. (Kong 3.9.3.)
 */
import type { Entry } from "./config";

/** The host name the project gives services that carry the plugin (it never resolves: see README). */
export const UNROUTED_HOST = "unrouted.model-based-round-robin.invalid";

/** K3.9.3 kong/tools/ip.lua `hostname_type`: more than one colon is IPv6, digits and dots IPv4, else a name. */
export function hostnameType(host: string): "ipv4" | "ipv6" | "name" {
  if ((host.match(/:/g)?.length ?? 0) > 1) return "ipv6";
  if (/^[\d.]+$/.test(host.replace(/:/g, ""))) return "ipv4";
  return "name";
}

/** The first entry Kong would not resolve from this service, or undefined when Kong reaches them all. */
export function unresolvableEntry(
  serviceHost: string | undefined,
  entries: readonly Entry[],
): Entry | undefined {
  if (serviceHost === undefined || hostnameType(serviceHost) === "name") return undefined;
  return entries.find((entry) => hostnameType(entry.host) === "name");
}
