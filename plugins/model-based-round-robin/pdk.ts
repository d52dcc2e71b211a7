/**
 * The part of Kong's PDK this plugin calls, typed as it behaves against a real Kong rather than as kong-pdk's
 * generated .d.ts says: Kong sends back only the first Lua return value (so `(nil, err)` arrives as
 * `undefined`), header maps arrive with every value as an array of strings, and a call Kong rejects is never
 * answered at all (so arguments are checked here before every call, not after).
 *
 * kong-pdk turns a camelCase property path into Kong's snake_case method name
 * (`kong.request.getRawBody` → `kong.request.get_raw_body`).
 */

/** A header map after Kong's multimap fix: lower-case names, every value a list. */
export type HeaderMap = Record<string, string[] | undefined>;

/** The fields of Kong's route entity this plugin reads (to name it in /status). */
export interface RouteEntity {
  id?: string;
  name?: string;
}

/** The fields of Kong's service entity this plugin reads. */
export interface ServiceEntity {
  /** For /status: what an operator knows the service by. */
  id?: string;
  name?: string;
  protocol?: string;
  /** Kong sends no key for a service without a path (msgpack nil). */
  path?: string;
  /** The host of the service's URL; its type (IP or name) decides whether Kong resolves a set_target host. */
  host?: string;
  /** Milliseconds; what a failover attempt keeps of Kong's proxying (Kong fills 60000 by default). */
  connect_timeout?: number;
  read_timeout?: number;
}

/** The fields of Kong's consumer entity this plugin reads. */
export interface ConsumerEntity {
  id?: string;
  username?: string;
  custom_id?: string;
}

export interface Pdk {
  request: {
    /** At most `maxHeaders` (1..1000) headers; without it Kong's lua_max_req_headers, 100 by default. */
    getHeaders(maxHeaders?: number): Promise<HeaderMap | undefined>;
    /** Kong 3.8+ reads bodies over client_body_buffer_size from the temp file up to `maxAllowedFileSize`. */
    getRawBody(maxAllowedFileSize: number): Promise<Buffer | string | undefined>;
    /** The method as Kong would send it upstream (after any plugin's set_method). */
    getMethod(): Promise<string | undefined>;
    /** `ngx.var.args`: the query string as Kong would append it upstream, without `?` ("" for none). */
    getRawQuery(): Promise<string | undefined>;
  };
  nginx: {
    getVar(name: string): Promise<string | undefined>;
    /** A field of ngx.ctx; in log, of the copy Kong saved for the log timer. */
    getCtx(key: string): Promise<unknown>;
  };
  router: {
    getService(): Promise<ServiceEntity | undefined>;
    getRoute(): Promise<RouteEntity | undefined>;
  };
  client: {
    getConsumer(): Promise<ConsumerEntity | undefined>;
  };
  service: {
    setTarget(host: string, port: number): Promise<void>;
    request: {
      setScheme(scheme: "http" | "https"): Promise<void>;
      setPath(path: string): Promise<void>;
      setRawBody(body: Buffer): Promise<void>;
      setHeader(name: string, value: string): Promise<void>;
      clearHeader(name: string): Promise<void>;
      /** Buffered proxying for this request only: the whole answer is held, so its body is readable in log. */
      enableBuffering(): Promise<void>;
    };
    response: {
      /** Only for a request proxied buffered; otherwise Kong raises and the call is never answered. */
      getRawBody(): Promise<Buffer | string | undefined>;
    };
  };
  response: {
    /** Not awaited by kong-pdk and never answered by Kong: return right after calling it. */
    exit(status: number, body?: unknown, headers?: Record<string, string | string[]>): Promise<void>;
    getStatus(): Promise<number | undefined>;
    getSource(): Promise<string | undefined>;
    getHeaders(): Promise<HeaderMap | undefined>;
    /** Headers the client gets with the proxied answer (an upstream header of the same name is sent too). */
    setHeaders(headers: Record<string, string>): Promise<void>;
  };
  log: {
    /** Recorded for the log data logging plugins write (and the log phase reads through serialize). */
    setSerializeValue(key: string, value: unknown): Promise<void>;
    /** In log: the log data Kong saved before its log timer, as a JSON string. */
    serialize(): Promise<string | undefined>;
    err(...message: string[]): Promise<void>;
    warn(...message: string[]): Promise<void>;
  };
}
