/**
 * The Kong double: Kong's side of the external plugin protocol, run against the real plugin server (the project's, built on kong-pdk; kong-pdk's stock kong-js-pluginserver on request).
 *
 *   const kong = await KongDouble.start({ pluginServers: [{ name, pluginsDirectory: "dist/plugins" }] });
 *   await kong.loadConfig(declarativeConfig);     // as POST /config on a DB-less Kong
 *   fetch(`${kong.proxyUrl}/...`);                 // the proxy port
 *   await kong.settled();                          // every log phase started so far has finished
 *   await kong.reload();                           // `kong reload`
 *   kong.pdkCalls.byPhase("access");               // PDK calls counted per phase and method
 *   await kong.stop();
 *
 * Two halves: config/ is Kong's configuration side (declarative loading, the Admin API, entities and their
 * schemas, the schema engine and metaschema, plugin info from the query command, the config each instance
 * gets); runtime/ is what serves traffic (the plugin server process and its MsgPack RPC, the PDK, the router,
 * the proxy, request state, the bundled plugins it emulates). The runtime reads the configuration; the
 * configuration side imports nothing of the runtime.
 *
 * It is a tool, used by the tests and by the demo and the bench; it is not product code: nothing in plugins/
 * may import it (spec/packaging/layering.test.ts checks both).
 */
import { randomUUID } from "node:crypto";
import { startAdmin } from "./config/admin";
import { createAdminApi } from "./config/admin-api";
import { BUNDLED_PLUGINS } from "./config/bundled-schemas";
import { ConfigStore, emptyConfig } from "./config/config-store";
import { parseDeclarativeConfig } from "./config/declarative";
import { KONG_VERSION } from "./config/kong-version";
import type { KongConfig, PluginInfo } from "./config/model";
import { parseNginxMs } from "./config/nginx-time";
import type { KongVersion } from "./config/plugin-info";
import type { ListenAt } from "./listen";
import {
  DEFAULT_SOCKET_READ_TIMEOUT_MS,
  PdkCallCounter,
  PluginServer,
  type ServerLaunch,
} from "./runtime/plugin-server";
import { type Runtime, startProxy } from "./runtime/proxy";
import { Router } from "./runtime/router";

export type { KongConfig, PluginInfo } from "./config/model";
export { KongApiError } from "./config/model";
export type { ListenAt } from "./listen";
export { accepts, removeStalePrefixes, type ServerLaunch, stockServerBin } from "./runtime/plugin-server";

export interface KongDoubleOptions {
  /**
   * The project's plugin server by default; `serverBin: stockServerBin()` runs kong-pdk's own. Kong manages it
   * unless said otherwise, and then it sees no environment (settings go in `args`). `supervised: true`: run
   * outside Kong by the double (with `env`), as the image's supervisor does. `external: true`: the double does
   * not start or respawn it (run `startArgv(kong.server(name).settings)` yourself).
   */
  pluginServers: ({ name: string; pluginsDirectory: string } & ServerLaunch)[];
  kongVersion?: KongVersion;
  config?: string | object;
  /** nginx's client_body_buffer_size; Kong's default is 8k. */
  clientBodyBufferSize?: number;
  /**
   * What Kong's env vault sees, and where `KONG_NGINX_HTTP_LUA_SOCKET_READ_TIMEOUT` is read from; default
   * process.env. (A Kong-managed plugin server sees none of it.)
   */
  env?: Record<string, string | undefined>;
  /**
   * nginx's `lua_socket_read_timeout` (an nginx time: `60s`, `500ms`): how long Kong waits for each reply of a
   * plugin server (K3.9.3 rpc/mp_rpc.lua sets no timeout of its own). Default: the environment's
   * `KONG_NGINX_HTTP_LUA_SOCKET_READ_TIMEOUT` (Kong's nginx_http_* injection), else nginx's 60s.
   */
  luaSocketReadTimeout?: string;
  /** "off": DB-less (POST /config); "postgres": the entity endpoints, held in memory. Default "off". */
  database?: "off" | "postgres";
  /**
   * Database mode only: Kong's eventual consistency. With `worker_consistency = eventual` (the default), a worker
   * rebuilds its router and plugins iterator from a timer every `worker_state_update_frequency` seconds (5 by
   * default) once an entity change has invalidated their version (K3.9.3 kong/templates/kong_defaults.lua;
   * kong/runloop/handler.lua init_worker.after: the "router-rebuild" and "plugins-iterator-rebuild" named_every
   * timers; get_updated_router/get_updated_plugins_iterator rebuild per request only under "strict"). Set, the
   * double applies Admin API changes at the next tick of a timer of this period (so up to this long after the
   * change); the configuration given at start is there at once. Default 0: every change applies immediately.
   */
  propagationDelayMs?: number;
  /** Where the proxy and the Admin API listen; by default any free port on 127.0.0.1 each. */
  listen?: { proxy?: ListenAt; admin?: ListenAt };
  /** Called with every log line as it is recorded (besides `logs`). */
  onLog?: (line: LogLine) => void;
  /** How many log lines `logs` keeps, the oldest dropped first (a long-lived double); default: all. */
  keepLogs?: number;
}

export interface LogLine {
  level: string;
  message: string;
  source: "server" | "kong" | "pdk";
  plugin?: string;
}

export class KongDouble {
  readonly logs: LogLine[] = [];
  readonly pdkCalls = new PdkCallCounter();
  proxyUrl = "";
  adminUrl = "";
  readonly servers = new Map<string, PluginServer>();
  readonly plugins = new Map<string, PluginInfo>();
  private runtime: Runtime = {
    config: emptyConfig(),
    router: new Router([], []),
    seq: 0,
    counters: new Map(),
  };
  private readonly store = new ConfigStore();
  private readonly pending = new Set<Promise<unknown>>();
  private closers: (() => Promise<void>)[] = [];

  private constructor(private readonly options: KongDoubleOptions) {}

  static async start(options: KongDoubleOptions): Promise<KongDouble> {
    const kong = new KongDouble(options);
    try {
      await kong.boot();
    } catch (error) {
      await kong.stop();
      throw error;
    }
    return kong;
  }

  private async boot(): Promise<void> {
    const log = (level: string, message: string, source: LogLine["source"], plugin?: string) => {
      const line: LogLine = { level, message, source, ...(plugin !== undefined && { plugin }) };
      this.logs.push(line);
      const keep = this.options.keepLogs;
      if (keep !== undefined && this.logs.length > keep) this.logs.splice(0, this.logs.length - keep);
      this.options.onLog?.(line);
      if (process.env.KONG_DOUBLE_DEBUG) process.stderr.write(`[${source}] ${level}: ${message}\n`);
    };
    for (const info of BUNDLED_PLUGINS.values()) this.plugins.set(info.name, info);
    const readTimeoutMs = socketReadTimeoutMs(this.options);
    for (const def of this.options.pluginServers) {
      const server = new PluginServer(
        def.name,
        def.pluginsDirectory,
        this.options.kongVersion ?? "3.9",
        log,
        def,
        readTimeoutMs,
      );
      this.servers.set(def.name, server);
      await server.start();
      for (const info of server.plugins) {
        if (this.plugins.has(info.name)) throw new Error(`plugin ${info.name} is served twice`);
        this.plugins.set(info.name, info);
      }
    }
    const proxy = await startProxy({
      runtime: () => this.runtime,
      plugins: this.plugins,
      servers: this.servers,
      counter: this.pdkCalls,
      log,
      env: this.options.env ?? process.env,
      clientBodyBufferSize: this.options.clientBodyBufferSize ?? 8192,
      nodeId: randomUUID(),
      ...(this.options.listen?.proxy && { listen: this.options.listen.proxy }),
      track: (p) => {
        this.pending.add(p);
        void p.finally(() => this.pending.delete(p));
      },
    });
    this.closers.push(proxy.close);
    this.proxyUrl = proxy.url;
    // The configuration given at start is there at once (Kong builds its first router and plugins iterator in
    // the init phase, before it serves).
    if (this.options.config !== undefined) this.apply(await this.loadConfig(this.options.config));
    // Every configuration change (POST /config, an entity change) rebuilds the router and bumps __seq__; with a
    // database and propagationDelayMs, at the next tick of the rebuild timer.
    const period = this.options.database === "postgres" ? (this.options.propagationDelayMs ?? 0) : 0;
    if (period > 0) {
      const timers = new Set<NodeJS.Timeout>();
      this.store.onChange((config) => {
        const timer = setTimeout(() => {
          timers.delete(timer);
          this.apply(config);
        }, period);
        timers.add(timer);
      });
      this.closers.push(async () => {
        for (const timer of timers) clearTimeout(timer);
      });
    } else this.store.onChange((config) => this.apply(config));
    const admin = await startAdmin(
      createAdminApi(this.store, {
        database: this.options.database ?? "off",
        plugins: this.plugins,
        version: KONG_VERSION,
        managesPluginServers: [...this.servers.values()].some((s) => s.managed),
      }),
      this.options.listen?.admin,
    );
    this.closers.push(admin.close);
    this.adminUrl = admin.url;
  }

  /** Loads a declarative configuration as `POST /config` does; throws KongApiError with Kong's 400 body. */
  async loadConfig(input: string | object): Promise<KongConfig> {
    const config = parseDeclarativeConfig(input, this.plugins);
    this.store.replace(config);
    return config;
  }

  /**
   * `kong reload`: new workers start while the old ones finish what they serve (see PluginServer.reload: a
   * server Kong manages is started anew, one it does not manage is left alone; the new workers start their own
   * plugin instances). DB-less, the new workers load the declarative configuration Kong was started with
   * (`declarative_config`: here the `config` option, or nothing): whatever `POST /config` loaded since is gone.
   * With a database, they read it from the database: nothing is lost.
   */
  async reload(): Promise<void> {
    await Promise.all([...this.servers.values()].map((server) => server.reload()));
    if ((this.options.database ?? "off") === "off") {
      if (this.options.config !== undefined) await this.loadConfig(this.options.config);
      else this.store.replace(emptyConfig());
    } else this.apply(this.store.config);
  }

  /** A new configuration rebuilds the router and bumps __seq__, so the next request starts new instances. */
  private apply(config: KongConfig): void {
    this.runtime = {
      config,
      router: new Router(config.routes, config.services),
      seq: this.runtime.seq + 1,
      counters: this.runtime.counters,
    };
  }

  /** Resolves when every log phase started so far has finished. */
  async settled(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }

  server(name: string): PluginServer {
    const server = this.servers.get(name);
    if (server === undefined) throw new Error(`no plugin server ${name}`);
    return server;
  }

  async stop(): Promise<void> {
    for (const close of this.closers.reverse()) await close().catch(() => undefined);
    this.closers = [];
    await Promise.all([...this.servers.values()].map((s) => s.stop()));
  }
}

function socketReadTimeoutMs(options: KongDoubleOptions): number {
  const configured =
    options.luaSocketReadTimeout ?? (options.env ?? process.env).KONG_NGINX_HTTP_LUA_SOCKET_READ_TIMEOUT;
  return configured === undefined
    ? DEFAULT_SOCKET_READ_TIMEOUT_MS
    : parseNginxMs("lua_socket_read_timeout", configured);
}
