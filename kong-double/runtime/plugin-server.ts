/**
 * One external plugin server as Kong runs it (kong/runloop/plugin_servers/{process,plugin,rpc/mp_rpc}.lua,
 * 3.9.3): the query command first, then the start command as a child whose output becomes log lines, respawned
 * at most once a second when it dies; per plugin id one instance, reused while `__seq__` is unchanged; the
 * HandleEvent/Step loop with the exact Step method names; and "no plugin instance" errors answered by dropping
 * the plugin's instances and retrying.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import type { PluginInfo } from "../config/model";
import { type KongVersion, runQueryCommand } from "../config/plugin-info";
import { type PluginServerSettings, queryArgv, socketPath, startArgv } from "../pluginserver-settings";
import { LuaError } from "./lua-error";
import { toLua } from "./lua-value";
import { PDK_SURFACE, type PdkContext, type StepMethod } from "./pdk";
import { RpcClient, RpcError } from "./rpc";

export type LogFn = (
  level: string,
  message: string,
  source: "server" | "kong" | "pdk",
  plugin?: string,
) => void;

export interface PhaseOutcome {
  /** "ret": the handler finished; "exit": kong.response.exit/error; "lua-error": Kong raised; "rpc-error": fail-open. */
  kind: "ret" | "exit" | "lua-error" | "rpc-error";
  message?: string;
}

/** Counts PDK calls per phase and method. */
export class PdkCallCounter {
  private counts: Record<string, Record<string, number>> = {};
  events: Record<string, number> = {};

  count(phase: string, method: string): void {
    const byPhase = this.counts[phase] ?? {};
    byPhase[method] = (byPhase[method] ?? 0) + 1;
    this.counts[phase] = byPhase;
  }

  event(phase: string): void {
    this.events[phase] = (this.events[phase] ?? 0) + 1;
  }

  byPhase(phase: string): Record<string, number> {
    return { ...this.counts[phase] };
  }

  total(phase: string): number {
    return Object.values(this.counts[phase] ?? {}).reduce((a, b) => a + b, 0);
  }

  reset(): void {
    this.counts = {};
    this.events = {};
  }
}

/**
 * mp_rpc.lua's fix_mmap for header and query maps: every value becomes an array of strings, a flag (`true`)
 * becomes an empty array, and an empty result an empty map.
 */
function fixMultimap(value: unknown): unknown {
  if (value === null || typeof value !== "object") return value;
  const out: Record<string, string[]> = {};
  for (const [key, v] of Object.entries(value)) {
    out[key] = v === true ? [] : Array.isArray(v) ? v.map(String) : [String(v)];
  }
  return out;
}

/** Whether something listens on the unix socket at `path`. */
export function accepts(path: string): Promise<boolean> {
  return new Promise((resolvePromise) => {
    const socket = connect(path);
    socket.once("connect", () => {
      socket.destroy();
      resolvePromise(true);
    });
    socket.once("error", () => resolvePromise(false));
  });
}

/**
 * The plugin server the double starts: the project's (dist/pluginserver/main.js, what the image runs), or
 * kong-pdk's stock kong-js-pluginserver. Found from the sources or from dist/ alike.
 */
function findServerBin(stock: boolean): string {
  const relative = stock ? "node_modules/kong-pdk/bin/kong-js-pluginserver" : "dist/pluginserver/main.js";
  for (let dir = __dirname; dir !== dirname(dir); dir = dirname(dir)) {
    const bin = join(dir, relative);
    if (existsSync(bin)) return bin;
  }
  throw new Error(
    stock ? "kong-pdk is not installed: run npm ci" : "no dist/pluginserver: run npm run build",
  );
}

export const stockServerBin = (): string => findServerBin(true);

/** Each double's temporary prefix (the socket, the state file) starts with this, in the OS temp directory. */
const PREFIX_STEM = "kong-double-";
/** The file in a prefix naming the process whose double made it: a prefix whose process is gone is stale. */
const OWNER_FILE = "kong-double.pid";

/** A fresh prefix, marked with this process's pid, after removing the prefixes of doubles whose process died. */
function makePrefix(): string {
  removeStalePrefixes();
  const prefix = mkdtempSync(join(tmpdir(), PREFIX_STEM));
  writeFileSync(join(prefix, OWNER_FILE), `${process.pid}\n`);
  return prefix;
}

/**
 * A double stops by removing its prefix; one killed before it could (SIGKILL, a crash) leaves it behind. Only a
 * prefix carrying the mark of a process that no longer exists is removed: another double's (another test file,
 * another user's) is alive or unknown, and is left alone.
 */
export function removeStalePrefixes(dir = tmpdir()): string[] {
  const removed: string[] = [];
  let names: string[];
  try {
    names = readdirSync(dir).filter((name) => name.startsWith(PREFIX_STEM));
  } catch {
    return removed;
  }
  for (const name of names) {
    const path = join(dir, name);
    let pid: number;
    try {
      pid = Number(readFileSync(join(path, OWNER_FILE), "utf8").trim());
    } catch {
      continue; // no mark: not made by this version of the double, or being made right now
    }
    if (!Number.isInteger(pid) || pid <= 0 || isAlive(pid)) continue;
    rmSync(path, { recursive: true, force: true });
    removed.push(path);
  }
  return removed;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists, as another user's process.
    return (error as NodeJS.ErrnoException).code !== "ESRCH";
  }
}

/**
 * How one plugin server is launched. By default Kong manages it (`pluginserver_<name>_start_cmd` set): worker 0
 * spawns the start command with only `PWD` in its environment (seen on Kong 3.9.1: nothing of Kong's own
 * environment reaches it), so its settings must be flags of the command (`args`, `nodeArgs`).
 */
export interface ServerLaunch {
  /** Another server script (run with node). */
  serverBin?: string;
  /** Flags appended to the start command (a `_start_cmd` can carry any). */
  args?: string[];
  /** node's own flags, as a `_start_cmd` of `node --max-old-space-size=64 main.js` gives them. */
  nodeArgs?: string[];
  /**
   * Environment variables of a server Kong does not manage (`supervised`): a managed one never sees them, and
   * the double refuses them there rather than pretend.
   */
  env?: Record<string, string>;
  /**
   * Managed outside Kong (no `start_cmd`, nothing at /usr/local/bin/<name>: K3.9.3 conf_loader "assuming external
   * process management"): the double runs only the query command and connects to the socket; whoever runs the
   * server starts it with `startArgv(server.settings)` and restarts it. Kong then keeps no process handle.
   */
  external?: boolean;
  /**
   * Managed outside Kong, run by the double the way the image's supervisor runs it: with the double's own
   * environment plus `env`, started again when it dies (no sooner than a second after the last start). Kong
   * keeps no handle: Admin `GET /` answers 200 and `reload()` leaves the process alone.
   */
  supervised?: boolean;
}

/** Kong's default `lua_socket_read_timeout`, nginx's own default (60s). */
export const DEFAULT_SOCKET_READ_TIMEOUT_MS = 60_000;

/**
 * One generation of Kong's workers as the plugin server sees it: their connection pool and their plugin
 * instances. `kong reload` starts new workers (a new generation) while the old ones finish what they serve.
 */
export interface Generation {
  rpc: RpcClient;
  instances: Map<string, { id: number; seq: number } | Promise<{ id: number; seq: number }>>;
  /** Phases running on this generation. */
  inFlight: number;
  /** Called when inFlight drops to 0 (set once the generation is retired). */
  onIdle?: () => void;
}

export class PluginServer {
  readonly settings: PluginServerSettings;
  plugins: PluginInfo[] = [];
  private child: ChildProcess | undefined;
  private stopping = false;
  private lastStart = 0;
  private respawnTimer: NodeJS.Timeout | undefined;
  private generation: Generation;
  /** Old generations still finishing their phases (after reload). */
  private readonly retiring = new Set<Generation>();
  /** Server processes of an old generation, still serving what it started. */
  private readonly retiringChildren = new Set<ChildProcess>();
  /** Every instance id started, for tests that follow instance recovery. */
  readonly started: number[] = [];

  constructor(
    readonly name: string,
    pluginsDirectory: string,
    private readonly kongVersion: KongVersion,
    private readonly log: LogFn,
    private readonly launch: ServerLaunch = {},
    /** `lua_socket_read_timeout`: how long Kong waits for each reply on the plugin-server socket. */
    private readonly readTimeoutMs = DEFAULT_SOCKET_READ_TIMEOUT_MS,
  ) {
    if (launch.external && launch.supervised)
      throw new Error(
        `plugin server ${name}: external (run by you) and supervised (run by the double) exclude each other`,
      );
    if (launch.env !== undefined && launch.external)
      throw new Error(
        `plugin server ${name}: an external server is started by you, with the environment you give it`,
      );
    if (launch.env !== undefined && !launch.supervised)
      throw new Error(
        `plugin server ${name}: a Kong-managed plugin server gets only PWD in its environment (seen on Kong 3.9.1), ` +
          "so env cannot reach it: pass its settings as flags (args) or run it outside Kong (supervised: true, or external: true)",
      );
    const prefix = makePrefix();
    this.settings = {
      name,
      kongPrefix: prefix,
      sockName: `${name}.sock`,
      pluginsDirectory: resolve(pluginsDirectory),
      serverBin: launch.serverBin ?? findServerBin(false),
    };
    this.generation = this.newGeneration();
  }

  /** Kong's connection pool to this server (the current workers'). */
  get rpc(): RpcClient {
    return this.generation.rpc;
  }

  private newGeneration(): Generation {
    return {
      rpc: new RpcClient(socketPath(this.settings), this.readTimeoutMs),
      instances: new Map(),
      inFlight: 0,
    };
  }

  async start(): Promise<void> {
    this.plugins = await runQueryCommand([process.execPath, ...queryArgv(this.settings)], {
      kongVersion: this.kongVersion,
      server: this.name,
    });
    if (!this.launch.external) await this.spawn();
  }

  /** Kong started this server and respawns it (it has a start command). */
  get managed(): boolean {
    return !this.launch.external && !this.launch.supervised;
  }

  /**
   * `kong reload`: nginx starts new workers and lets the old ones finish what they serve. The new workers have
   * their own connections and start their own plugin instances. A server Kong does not manage is left alone
   * (its process and memory stay). A managed one is started again by the new worker 0 (K3.9.3
   * kong/runloop/plugin_servers/process.lua `start_pluginservers` from init_worker) on the same socket path,
   * which the new server takes over (kong-pdk's listener unlinks the path and listens); the old server keeps
   * serving the old workers' connections until the old worker 0 exits, when `Kong.exit_worker` →
   * `stop_pluginservers` sends it SIGTERM. The double retires the old generation once its phases in flight have
   * finished (nginx's graceful worker exit); seen on Kong 3.9.1: the old server served 2-7 s more.
   */
  async reload(): Promise<void> {
    const old = this.generation;
    const oldChild = this.child;
    this.generation = this.newGeneration();
    this.retiring.add(old);
    if (this.managed && oldChild !== undefined) {
      this.retiringChildren.add(oldChild);
      this.child = undefined; // its exit is no longer this server's: no respawn for it
      clearTimeout(this.respawnTimer);
      await this.spawn(inode(socketPath(this.settings)));
    }
    const retire = () => {
      old.rpc.close();
      this.retiring.delete(old);
      if (oldChild !== undefined && this.retiringChildren.has(oldChild)) {
        this.retiringChildren.delete(oldChild);
        oldChild.kill("SIGTERM");
      }
    };
    if (old.inFlight === 0) retire();
    else old.onIdle = retire;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Resolves when the current (or respawned) server listens on its socket. */
  whenReady(): Promise<void> {
    return this.ready;
  }

  private ready: Promise<void> = Promise.resolve();

  /** Starts the server; `replacing`: the inode of a socket an old server still listens on, to wait past. */
  private spawn(replacing?: number): Promise<void> {
    this.ready = this.spawnOnce(replacing);
    return this.ready;
  }

  private async spawnOnce(replacing?: number): Promise<void> {
    this.lastStart = Date.now();
    const [bin, ...args] = startArgv(this.settings);
    const child = spawn(
      process.execPath,
      [...(this.launch.nodeArgs ?? []), bin as string, ...args, ...(this.launch.args ?? [])],
      {
        stdio: ["ignore", "pipe", "pipe"],
        // Kong runs the start command through ngx.pipe as `exec <start_cmd>`: only PWD reaches a managed
        // server. A supervised one has the environment of whoever supervises it (here the double's).
        env: this.launch.supervised ? { ...process.env, ...this.launch.env } : { PWD: process.cwd() },
      },
    );
    this.child = child;
    const pid = child.pid;
    for (const stream of [child.stdout, child.stderr]) {
      let rest = "";
      stream?.on("data", (data: Buffer) => {
        const lines = (rest + data.toString("utf8")).split("\n");
        rest = lines.pop() ?? "";
        for (const line of lines)
          if (line.trim() !== "") this.log("info", `[${this.name}:${pid}] ${line}`, "server");
      });
    }
    child.on("exit", (code, signal) => {
      this.retiringChildren.delete(child);
      if (this.child !== child) return;
      this.log(
        "notice",
        `external pluginserver '${this.name}' terminated: ${signal ? `signal ${signal}` : `exit ${code}`}`,
        "kong",
      );
      this.child = undefined;
      if (this.stopping || code === 127) return;
      const wait = Math.max(0, 1000 - (Date.now() - this.lastStart));
      this.respawnTimer = setTimeout(() => void this.spawn().catch(() => undefined), wait);
    });
    await this.waitForSocket(replacing);
  }

  private async waitForSocket(replacing?: number): Promise<void> {
    const path = socketPath(this.settings);
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      if (existsSync(path) && inode(path) !== replacing && (await accepts(path))) return;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`plugin server ${this.name} did not listen on ${path}`);
  }

  /** Kong's get_instance_id: one instance per plugin id, replaced when __seq__ changes. */
  async instanceFor(
    pluginName: string,
    pluginId: string,
    seq: number,
    config: () => Record<string, unknown>,
    generation: Generation = this.generation,
  ): Promise<number> {
    const instances = generation.instances;
    const existing = instances.get(pluginId);
    if (existing !== undefined) {
      const entry = await existing;
      if (entry.seq === seq) return entry.id;
    }
    const previous = existing === undefined ? undefined : await existing;
    const starting = (async () => {
      const reply = (await generation.rpc.call("plugin.StartInstance", {
        Name: pluginName,
        Config: JSON.stringify(config()),
      })) as { Id: number };
      this.started.push(reply.Id);
      if (previous !== undefined) {
        generation.rpc.call("plugin.CloseInstance", previous.id).catch(() => undefined);
      }
      return { id: reply.Id, seq };
    })();
    instances.set(pluginId, starting);
    try {
      const entry = await starting;
      instances.set(pluginId, entry);
      return entry.id;
    } catch (error) {
      instances.delete(pluginId);
      throw error;
    }
  }

  resetInstances(): void {
    this.generation.instances.clear();
  }

  /**
   * Runs one phase of one plugin for one request: HandleEvent, then a Step per PDK call until "ret". A PDK
   * call Kong would reject stops the loop without a reply (the JS side waits forever, as against Kong).
   */
  async runPhase(
    instance: (generation: Generation) => Promise<number>,
    ctx: PdkContext,
    counter: PdkCallCounter,
  ): Promise<PhaseOutcome> {
    // A phase runs to its end on the workers (the generation) it started on, kong reload or not.
    const generation = this.generation;
    generation.inFlight++;
    try {
      return await this.runPhaseOn(generation, instance, ctx, counter);
    } finally {
      generation.inFlight--;
      if (generation.inFlight === 0) generation.onIdle?.();
    }
  }

  private async runPhaseOn(
    generation: Generation,
    instance: (generation: Generation) => Promise<number>,
    ctx: PdkContext,
    counter: PdkCallCounter,
  ): Promise<PhaseOutcome> {
    const rpc = generation.rpc;
    let reply: { Data?: unknown; EventId?: number };
    for (let attempt = 0; ; attempt++) {
      // A StartInstance failure (the server down, no socket) is raised by Kong (K3.9.3
      // kong/runloop/plugin_servers/plugin.lua get_instance_id: error(err)): in access the runloop turns it into
      // a 500 (kong/init.lua execute_collecting_plugins_iterator), so a worker that had no instance yet fails
      // the request while one that had an instance fails open on the HandleEvent error below.
      let instanceId: number;
      try {
        instanceId = await instance(generation);
      } catch (error) {
        if (!(error instanceof RpcError)) throw error;
        this.log("err", `starting instance: ${error.message}`, "kong", this.name);
        return { kind: "lua-error", message: `starting instance: ${error.message}` };
      }
      try {
        reply = (await rpc.call("plugin.HandleEvent", {
          InstanceId: instanceId,
          EventName: ctx.phase,
        })) as typeof reply;
        break;
      } catch (error) {
        if (!(error instanceof RpcError)) throw error;
        if (/no plugin instance/i.test(error.message) && attempt < 10) {
          this.log("warn", `${error.message}, resetting instances of ${this.name}`, "kong");
          generation.instances.clear();
          await new Promise((r) => setTimeout(r, 50 * attempt));
          continue;
        }
        // Any other RPC failure: Kong logs it and the request goes on without the plugin (fail-open).
        this.log("err", `plugin server error in ${ctx.phase}: ${error.message}`, "kong");
        return { kind: "rpc-error", message: error.message };
      }
    }
    counter.event(ctx.phase);
    const eventId = reply.EventId;
    while (reply.Data !== "ret") {
      const call = reply.Data as { Method?: string; Args?: unknown } | undefined;
      const method = call?.Method ?? "";
      // Kong calls the method with unpack(Args): each argument as Lua sees it (nil elements stay positional).
      const args = (Array.isArray(call?.Args) ? call.Args : call?.Args === undefined ? [] : [call.Args]).map(
        toLua,
      );
      counter.count(ctx.phase, method);
      const def = PDK_SURFACE[method];
      let result: unknown;
      let step: StepMethod = "plugin.Step";
      if (def === undefined) {
        this.log("err", `could not find pdk method: ${method}`, "kong");
      } else {
        step = def.step ?? "plugin.Step";
        try {
          if (!def.phases.includes(ctx.phase)) {
            throw new LuaError(
              `function cannot be called in ${ctx.phase} phase (only in: ${def.phases.join(", ")})`,
            );
          }
          result = def.fn(ctx, args);
        } catch (error) {
          if (!(error instanceof LuaError)) throw error;
          this.log("err", `${method}: ${error.message}`, "kong", this.name);
          return { kind: "lua-error", message: `${method}: ${error.message}` };
        }
      }
      if (ctx.exit !== undefined) return { kind: "exit" };
      if (step === "plugin.StepMultiMap") result = fixMultimap(result);
      try {
        reply = (await rpc.call(
          step,
          result === undefined ? { EventId: eventId } : { EventId: eventId, Data: result },
        )) as typeof reply;
      } catch (error) {
        this.log("err", `plugin server error in ${ctx.phase}: ${(error as Error).message}`, "kong");
        return { kind: "rpc-error", message: (error as Error).message };
      }
    }
    return { kind: "ret" };
  }

  kill(signal: NodeJS.Signals = "SIGKILL"): void {
    this.child?.kill(signal);
  }

  /** Stops the server it started (it writes its last state on SIGTERM), then removes the temporary prefix. */
  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.respawnTimer);
    this.rpc.close();
    for (const old of this.retiring) old.rpc.close();
    await Promise.all([this.child, ...this.retiringChildren].map((child) => stopChild(child)));
    rmSync(this.settings.kongPrefix, { recursive: true, force: true });
  }
}

/** SIGTERMs a server process that still runs and waits for its exit. */
async function stopChild(child: ChildProcess | undefined): Promise<void> {
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((r) => {
    child.once("exit", () => r());
    child.kill("SIGTERM");
  });
}

/** The inode of the socket file at `path`, or undefined when there is none. */
function inode(path: string): number | undefined {
  try {
    return statSync(path).ino;
  } catch {
    return undefined;
  }
}
