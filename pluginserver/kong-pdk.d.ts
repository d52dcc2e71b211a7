/**
 * The parts of kong-pdk 0.6.0's plugin server (plain CommonJS, shipped without types) that the project's
 * server builds on. Only what pluginserver/ uses is declared; see node_modules/kong-pdk/server.js.
 * (Its listener.js is replaced by ./listener.)
 */
declare module "kong-pdk/server" {
  /** What the Server and the Listener call on their logger (node-color-log's interface). */
  interface PluginServerLogger {
    debug(...args: unknown[]): void;
    info(...args: unknown[]): void;
    warn(...args: unknown[]): void;
    error(...args: unknown[]): void;
  }

  /** The server side of one event's pipe: `get` takes the plugin's next message, `put` answers it. */
  interface EventPipe {
    get(): Promise<unknown>;
    put(value: unknown): void;
  }

  /** A HandleEvent or Step reply: the plugin's next PDK call (`{Method, Args}`) or "ret". */
  interface StepReply {
    Data: unknown;
    EventId: number;
  }

  class Server {
    constructor(pluginDir: string | undefined, logger: PluginServerLogger, expireTtl?: number);
    /** One entry per event Kong may still step, keyed by event id. */
    events: Map<number, EventPipe>;
    logger: PluginServerLogger;
    /** Plugin instances by id. */
    instances: Map<number, unknown>;
    close(): void;
    getPlugins(): Map<string, unknown>;
    getLogger(): PluginServerLogger;
    GetPluginInfo(name: string): Promise<unknown>;
    HandleEvent(event: { InstanceId: number; EventName: string }): Promise<StepReply>;
    step(data: { EventId: number; Data?: unknown }, isError: boolean): Promise<StepReply>;
  }

  namespace Server {
    export type { EventPipe, PluginServerLogger, StepReply };
  }

  export = Server;
}
