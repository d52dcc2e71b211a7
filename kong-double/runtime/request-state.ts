/**
 * What Kong knows about one proxied request (its ngx.ctx, ngx.var and ngx.req, as far as the PDK exposes
 * them): the client's request, the route match, the upstream state the PDK changes, the response, and the
 * per-request kong.ctx.shared table.
 */
import type { ConsumerEntity, KeyAuthCredentialEntity, RouteEntity, ServiceEntity } from "../config/model";

export type HeaderValues = Record<string, string[]>;

export interface ExitResponse {
  status: number;
  body: Buffer;
  headers: Record<string, string | string[]>;
  source: "exit" | "error";
  /** The table body cjson could not encode: Kong raises when it flushes the exit, and nginx answers 500. */
  encodingError?: string;
}

export interface RequestState {
  id: string;
  startedAt: number;
  client: {
    method: string;
    /** Raw path as received, percent-escapes intact. */
    path: string;
    /** Raw query string without "?"; undefined when the request line had none. */
    query: string | undefined;
    headers: HeaderValues;
    body: Buffer;
    ip: string;
    port: number;
    scheme: "http";
    host: string;
  };
  route: RouteEntity;
  /** Named captures of the matched regex path. */
  uriCaptures: Record<string, string>;
  service: ServiceEntity | undefined;
  consumer?: ConsumerEntity;
  credential?: KeyAuthCredentialEntity;
  upstream: {
    scheme: string;
    host: string;
    /**
     * balancer_data.type: the hostname_type of the service's host, fixed before access (set_target changes the
     * host, not this); an IP type makes Kong use the host as the peer without resolving it.
     */
    hostType: "ipv4" | "ipv6" | "name";
    port: number;
    /** $upstream_uri without the query (Kong appends `?args` after the access phase). */
    uri: string;
    query: string | undefined;
    method: string;
    /** $upstream_host: set by set_target, a Host header, or preserve_host. */
    hostVar: string | undefined;
    headers: HeaderValues;
    body: Buffer;
    buffered: boolean;
  };
  response: {
    status?: number;
    headers: HeaderValues;
    /** Headers plugins set in access, added to whatever the client gets. */
    extraHeaders: HeaderValues;
    source?: "service" | "exit" | "error";
    upstreamStatus?: string;
    /** The whole upstream body, kept only when the request was proxied buffered (ngx.ctx.buffered_body). */
    bufferedBody?: Buffer;
  };
  exit?: ExitResponse;
  /**
   * balancer_data.tries (K3.9.3 kong/init.lua Kong.balancer): one entry per try nginx made, with the peer; a try
   * followed by another gets the failure's `state` and `code` (ngx.balancer get_last_failure). Empty on an exit.
   */
  tries: Try[];
  /** Kong's ctx timestamps as kong.log.serialize turns them into `latencies` (K3.9.3 kong/pdk/log.lua). */
  timing: {
    /** KONG_PROXY_LATENCY (start → the last balancer call) or, for an exit, KONG_RESPONSE_LATENCY. */
    kong?: number;
    /** KONG_WAITING_TIME: the last balancer call → the response head (proxied only). */
    waiting?: number;
    /** KONG_RECEIVE_TIME: the response head → its last byte (proxied only). */
    receive?: number;
    /** When the log phase started ($request_time's end). */
    endedAt?: number;
  };
  shared: Map<string, unknown>;
  /** kong.log.set_serialize_value calls, applied in order when the log data is serialised (K3.9.3 pdk/log.lua). */
  serializeValues: { key: string; value: unknown; mode: "set" | "add" | "replace" }[];
  ngxCtx: Map<string, unknown>;
}

export interface Try {
  balancer_start: number;
  balancer_start_ns: number;
  ip: string;
  port: number;
  balancer_latency: number;
  balancer_latency_ns: number;
  state?: "failed";
  code?: number;
}
