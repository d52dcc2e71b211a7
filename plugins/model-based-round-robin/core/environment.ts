/**
 * Production or sandbox, decided the way APK decides it (by the host the request hit) or by the authenticated
 * consumer. Never by any other header: a client could send it.
 */
import type { Environment, RoundRobinConfig } from "./config";

export type { Environment };

export interface RequestIdentity {
  /** The Host header as received (may carry a port). */
  host?: string | undefined;
  /** The consumer an authentication plugin attached to the request, if any. */
  consumer?: { id?: string; username?: string; custom_id?: string } | undefined;
}

export function environmentOf(config: RoundRobinConfig, request: RequestIdentity): Environment {
  if (request.host !== undefined && isSandboxHost(config, request.host)) return "sandbox";
  const consumer = request.consumer;
  if (consumer === undefined) return "production";
  const { ids, usernames } = config.sandboxConsumers;
  // One list of names for id, username and custom_id would let a consumer whose custom_id is someone's
  // username into sandbox: each configured name is matched against exactly one field.
  if (consumer.id !== undefined && ids.has(consumer.id.toLowerCase())) return "sandbox";
  if (consumer.username !== undefined && usernames.has(consumer.username)) return "sandbox";
  return "production";
}

function isSandboxHost(config: RoundRobinConfig, rawHost: string): boolean {
  const { exact, suffixes } = config.sandboxHosts;
  if (exact.size === 0 && suffixes.length === 0) return false;
  const host = withoutPort(rawHost.toLowerCase());
  return exact.has(host) || suffixes.some((suffix) => host.endsWith(suffix) && host.length > suffix.length);
}

function withoutPort(host: string): string {
  if (host.startsWith("[")) return host.slice(0, host.indexOf("]") + 1);
  const colon = host.lastIndexOf(":");
  return colon === -1 ? host : host.slice(0, colon);
}
