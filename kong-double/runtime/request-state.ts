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
  shared: Map<string, unknown>;
  /** kong.log.set_serialize_value calls, applied in order when the log data is serialised (K3.9.3 pdk/log.lua). */
  serializeValues: { key: string; value: unknown; mode: "set" | "add" | "replace" }[];
  ngxCtx: Map<string, unknown>;
}
