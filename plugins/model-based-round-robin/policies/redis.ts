/**
 * policy `redis`: every Kong node's plugin server keeps the shared state (core/shared-state.ts) in its own
 * memory, as with `local`, and this module keeps those mirrors alike through one Redis:
 *
 * - a change made here is written to Redis by a Lua script that also publishes it, so every other node takes it
 *   in by push within a few milliseconds; the request path never waits for Redis (share() does not await);
 * - a plugin's state is read from Redis once, when this process first meets the plugin (bounded by
 *   redis.timeout), and again after every reconnection: the keys of the entries its configuration has, and no
 *   others, so whatever else Redis holds costs nothing here; what is read goes through the one writer
 *   (core/process-state.ts write), which clamps deadlines to what the configuration can set;
 * - after a reconnection this node writes again only the suspensions it decided itself (source `local`), never
 *   what it learned from Redis: a Redis emptied on purpose (FLUSHALL, or the plugin's keys deleted) is refilled
 *   with the nodes' own observations only;
 * - while Redis is away, changes queue here (coalesced, bounded) and the plugin goes on with its own state; one
 *   line is logged when the outage starts and one when it ends, when the queue is written and the cluster's
 *   state read back.
 *
 * Layout, per plugin id P (the `{P}` hash tag keeps a plugin's keys in one slot):
 *   model-based-round-robin:{P}:s|<env>|<entry key>   "<until ms> <reason>", expires at <until>
 *   model-based-round-robin:{P}:p|<env>|<entry key>   an entry awaiting its billing probe, expires after a day
 *   model-based-round-robin:{P}:index                 sorted set of those members by expiry, trimmed on every
 *                                                     write and expiring with its last member
 * and the channel model-based-round-robin:changes:<database> (pub/sub is not per database).
 *
 * ioredis: commands fail at once while disconnected (no offline queue) and after redis.timeout when Redis is
 * slow, so nothing piles up in the client; it reconnects by itself with the backoff below, and the link
 * subscribes again on every new connection of its subscriber.
 */
import { randomUUID } from "node:crypto";
import Redis, { type RedisOptions } from "ioredis";
import type { Environment, RedisSettings, RoundRobinConfig } from "../core/config";
import { applyShared, ownSuspensions, type SharedChange, type StatePolicy } from "../core/shared-state";

const PREFIX = "model-based-round-robin";
/** An entry awaiting a billing probe nobody sends (no traffic) is forgotten after a day, as idle rotations are. */
const SUSPECT_TTL_MS = 24 * 3600 * 1000;
/** Changes kept for Redis while it is away; beyond this the oldest are dropped (the others still get there). */
const MAX_PENDING = 10_000;
/** The longest the first requests of a configuration wait for the cluster's state, whatever redis.timeout says. */
const MAX_FIRST_WAIT_MS = 10_000;
/** Reconnection backoff: 100 ms doubling to 5 s. */
const RECONNECT_FIRST_MS = 100;
const RECONNECT_MAX_MS = 5000;

export type Log = (message: string) => void;

/**
 * The end of every write: the key expires at ARGV[1], the plugin's index holds it by that time (ended members
 * trimmed, the index itself expiring with its last member), and the change is published.
 */
const KEEP_INDEXED_AND_PUBLISH = `redis.call('PEXPIREAT', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[4])
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
if last[2] then redis.call('PEXPIREAT', KEYS[2], last[2]) end
redis.call('PUBLISH', ARGV[5], ARGV[6])
return 1
`;

/**
 * Keeps a suspension only if it ends later than the one Redis holds (a repeat never shortens it), indexes it,
 * and publishes it. KEYS: the suspension, the plugin's index. ARGV: until, reason, index member, now, channel,
 * message.
 */
const SUSPEND = `
local current = redis.call('GET', KEYS[1])
if current then
  local running = tonumber(string.match(current, '^%d+'))
  if running and running >= tonumber(ARGV[1]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. ARGV[2])
${KEEP_INDEXED_AND_PUBLISH}`;

/** Marks an entry as awaiting its billing probe. KEYS/ARGV as SUSPEND, ARGV[1] being the mark's expiry. */
const MARK_SUSPECT = `
redis.call('SET', KEYS[1], '1')
${KEEP_INDEXED_AND_PUBLISH}`;

/** Takes the probe mark away; publishes only if this node took it first. KEYS/ARGV as SUSPEND. */
const TAKE_PROBE = `
local taken = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[3])
if taken == 1 then redis.call('PUBLISH', ARGV[5], ARGV[6]) end
return taken
`;

/**
 * An operator's lift (status/actions.ts): deletes the entry's suspension and probe mark, takes both out of the
 * index and publishes the lift, so every node ends the suspension it holds in memory. SUSPEND only ever extends
 * a deadline: a lift has to remove it. KEYS: the suspension, the probe mark, the index. ARGV: their two index
 * members, channel, message.
 */
const LIFT = `
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1], ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
`;

interface ScriptCommands {
  mbrrSuspend(...args: (string | number)[]): Promise<number>;
  mbrrMarkSuspect(...args: (string | number)[]): Promise<number>;
  mbrrTakeProbe(...args: (string | number)[]): Promise<number>;
  mbrrLift(...args: (string | number)[]): Promise<number>;
}
type Commands = Redis & ScriptCommands;

/** One link per distinct Redis (same settings): the plugins configured alike share its two connections. */
const links = new Map<string, RedisLink>();
/** Which link each plugin id is attached to. */
const linkOfPlugin = new Map<string, RedisLink>();

/** The redis policy of one plugin configuration (its entries name the keys read from Redis). */
export function redisPolicy(
  pluginId: string,
  settings: RedisSettings,
  log: Log,
  entries: Pick<RoundRobinConfig, "production" | "sandbox">,
): StatePolicy {
  const id = JSON.stringify(settings);
  let link = links.get(id);
  if (link === undefined) {
    link = new RedisLink(id, settings, log);
    links.set(id, link);
  }
  const previous = linkOfPlugin.get(pluginId);
  link.know(pluginId, membersOf(entries));
  if (previous !== link) {
    if (previous !== undefined) detach(pluginId);
    linkOfPlugin.set(pluginId, link);
    link.attach(pluginId);
  }
  const attached = link;
  return {
    share: (change) => attached.share(change),
    ready: () => attached.ready(pluginId),
  };
}

/** The plugin no longer shares through Redis (its policy changed): a link nobody uses is closed. */
export function detach(pluginId: string): void {
  const link = linkOfPlugin.get(pluginId);
  if (link === undefined) return;
  linkOfPlugin.delete(pluginId);
  if (link.detach(pluginId) === 0) {
    links.delete(link.id);
    link.close();
  }
}

/** What the status listener shows of each Redis this process shares through (never its credentials). */
export interface RedisLinkStatus {
  /** host:port/database */
  redis: string;
  /** Both connections up and subscribed, and no outage running. */
  sharing: boolean;
  /** When the running outage started (ISO 8601). */
  outage_since?: string;
  /** Changes made here that Redis has not taken yet. */
  pending_changes: number;
  plugins: string[];
}

export function redisLinkStatus(): RedisLinkStatus[] {
  return [...links.values()].map((link) => link.status());
}

/** Closes every link (tests, and a process that wants to exit promptly). */
export async function closeAllLinks(): Promise<void> {
  const all = [...links.values()];
  links.clear();
  linkOfPlugin.clear();
  await Promise.all(all.map((link) => link.close()));
}

class RedisLink {
  /** Tells this node's own messages apart when they come back through the channel. */
  private readonly node = randomUUID();
  private readonly channel: string;
  private readonly where: string;
  private readonly commands: Commands;
  private readonly subscriber: Redis;
  private readonly plugins = new Set<string>();
  /** Per plugin, the index members of its configured entries: the only keys read for it. */
  private readonly members = new Map<string, string[]>();
  /** Per plugin, its first read of the cluster's state: waited for (bounded) before the first request. */
  private readonly firstLoads = new Map<string, { done: Promise<void>; settle: () => void }>();
  /** Plugins whose first read happened or was given up on: nothing to wait for any more. */
  private readonly settled = new Set<string>();
  /** Changes Redis has not taken yet, by what they are about (the later one replaces the earlier). */
  private readonly pending = new Map<string, SharedChange>();
  private commandsReady = false;
  private subscriberReady = false;
  /** When the running outage started; undefined while Redis answers. */
  private outageSince: number | undefined;
  private retry: NodeJS.Timeout | undefined;
  private retryDelayMs = RECONNECT_FIRST_MS;
  private syncing: Promise<void> | undefined;
  /** A reason to sync came while a sync ran: run once more after it. */
  private syncAgain = false;
  private closed = false;

  constructor(
    readonly id: string,
    private readonly settings: RedisSettings,
    private readonly log: Log,
  ) {
    this.where = `${settings.host}:${settings.port}/${settings.database}`;
    this.channel = `${PREFIX}:changes:${settings.database}`;
    this.commands = new Redis({ ...connectionOptions(settings), enableOfflineQueue: false }) as Commands;
    this.commands.defineCommand("mbrrSuspend", { numberOfKeys: 2, lua: SUSPEND });
    this.commands.defineCommand("mbrrMarkSuspect", { numberOfKeys: 2, lua: MARK_SUSPECT });
    this.commands.defineCommand("mbrrTakeProbe", { numberOfKeys: 2, lua: TAKE_PROBE });
    this.commands.defineCommand("mbrrLift", { numberOfKeys: 3, lua: LIFT });
    // The subscriber only ever sends SUBSCRIBE, once per connection (see its "ready" below). Not ioredis's
    // resubscription: it renews only a subscription that once succeeded, and one sent while Redis was away
    // fails (no retries), so a process that met Redis down would never subscribe.
    this.subscriber = new Redis({
      ...connectionOptions(settings),
      commandTimeout: undefined,
      autoResubscribe: false,
    });

    this.commands.on("ready", () => {
      this.commandsReady = true;
      this.resync();
    });
    this.subscriber.on("ready", () => {
      this.subscriber.subscribe(this.channel).then(
        () => {
          this.subscriberReady = true;
          // Changes published while it was away were missed: read the state again, now that none can be.
          this.resync();
        },
        (error: unknown) => this.outage(messageOf(error)),
      );
    });
    for (const [client, which] of [
      [this.commands, "commandsReady"],
      [this.subscriber, "subscriberReady"],
    ] as const) {
      client.on("error", (error: Error) => this.outage(error.message));
      client.on("close", () => {
        this[which] = false;
        this.outage("connection closed");
      });
    }
    this.subscriber.on("message", (_channel: string, message: string) => {
      try {
        this.receive(message);
      } catch (error) {
        this.log(`ignored a message on ${this.channel}: ${messageOf(error)}`);
      }
    });
  }

  status(): RedisLinkStatus {
    return {
      redis: this.where,
      sharing: this.commandsReady && this.subscriberReady && this.outageSince === undefined,
      ...(this.outageSince !== undefined && { outage_since: new Date(this.outageSince).toISOString() }),
      pending_changes: this.pending.size,
      plugins: [...this.plugins],
    };
  }

  /** The plugin's configuration (still) has these entries. */
  know(pluginId: string, members: string[]): void {
    this.members.set(pluginId, members);
  }

  attach(pluginId: string): void {
    this.plugins.add(pluginId);
    let settle = () => {};
    const done = new Promise<void>((resolve) => {
      settle = resolve;
    });
    this.firstLoads.set(pluginId, { done, settle });
    // A failed read (Redis gone or hung meanwhile) is an outage: the sync after it reads again. Unhandled,
    // the rejection would end the plugin server.
    if (this.commandsReady) this.load(pluginId).catch((error: unknown) => this.outage(messageOf(error)));
  }

  /** Returns how many plugins are left on this link. */
  detach(pluginId: string): number {
    this.plugins.delete(pluginId);
    this.members.delete(pluginId);
    this.firstLoads.get(pluginId)?.settle();
    this.firstLoads.delete(pluginId);
    this.settled.delete(pluginId);
    return this.plugins.size;
  }

  ready(pluginId: string): Promise<void> | undefined {
    if (this.settled.has(pluginId)) return undefined;
    const first = this.firstLoads.get(pluginId);
    if (first === undefined) return undefined;
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise<void>((resolve) => {
      // redis.timeout may be set far above what Kong waits for a plugin server's answer (60 s by default).
      timer = setTimeout(resolve, Math.min(this.settings.timeoutMs, MAX_FIRST_WAIT_MS));
    });
    return Promise.race([first.done, limit]).finally(() => {
      clearTimeout(timer);
      // Waited once: should Redis not have answered, the plugin serves from its own state from now on and
      // takes the cluster's in when Redis is back.
      this.settled.add(pluginId);
    });
  }

  share(change: SharedChange): void {
    if (this.closed) return;
    if (!this.commandsReady || this.outageSince !== undefined) {
      this.keep(change);
      return;
    }
    this.write(change).catch((error: unknown) => {
      this.keep(change);
      this.outage(messageOf(error));
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retry);
    for (const first of this.firstLoads.values()) first.settle();
    this.commands.disconnect();
    this.subscriber.disconnect();
  }

  /** Writes one change and publishes it, in one script. */
  private write(change: SharedChange, nowMs = Date.now()): Promise<number> {
    if (change.kind === "lifted") {
      const members = [`s|${change.env}|${change.entryKey}`, `p|${change.env}|${change.entryKey}`];
      const key = (tail: string) => `${PREFIX}:{${change.pluginId}}:${tail}`;
      const message = JSON.stringify({ node: this.node, change });
      return this.commands.mbrrLift(...members.map(key), key("index"), ...members, this.channel, message);
    }
    const member = memberOf(change);
    // PEXPIREAT takes whole milliseconds, and a hint may have a fraction (retry-after-ms: 1500.5): Redis would
    // refuse the script, and the refusal would pass for an outage. Rounded up, the deadline is never shortened.
    const untilMs = change.kind === "suspended" ? Math.ceil(change.untilMs) : 0;
    const keys = [`${PREFIX}:{${change.pluginId}}:${member}`, `${PREFIX}:{${change.pluginId}}:index`];
    const message = JSON.stringify({ node: this.node, change });
    switch (change.kind) {
      case "suspended":
        return this.commands.mbrrSuspend(
          ...keys,
          untilMs,
          change.reason,
          member,
          nowMs,
          this.channel,
          message,
        );
      case "suspect":
        return this.commands.mbrrMarkSuspect(
          ...keys,
          nowMs + SUSPECT_TTL_MS,
          "",
          member,
          nowMs,
          this.channel,
          message,
        );
      case "probe-taken":
        return this.commands.mbrrTakeProbe(...keys, 0, "", member, nowMs, this.channel, message);
    }
  }

  /** Keeps a change for when Redis is back; a later one about the same thing replaces it. */
  private keep(change: SharedChange): void {
    // A lift and a suspension of one entry are kept under one name (memberOf): the later one is what counts.
    const what = `${change.pluginId}|${memberOf(change)}`;
    const earlier = this.pending.get(what);
    if (earlier?.kind === "suspended" && change.kind === "suspended" && earlier.untilMs >= change.untilMs) {
      return;
    }
    this.pending.delete(what);
    this.pending.set(what, change);
    if (this.pending.size > MAX_PENDING) {
      const oldest = this.pending.keys().next().value;
      if (oldest !== undefined) this.pending.delete(oldest);
    }
  }

  /** Takes in a change another node published. */
  private receive(message: string): void {
    // Anything may arrive on the channel (another version, a hand-typed PUBLISH): it runs in ioredis's socket
    // handler, where a throw would end the plugin server.
    let parsed: { node?: unknown; change?: unknown };
    try {
      parsed = JSON.parse(message) as typeof parsed;
    } catch {
      return;
    }
    if (parsed === null || typeof parsed !== "object" || parsed.node === this.node) return;
    const change = asChange(parsed.change);
    if (change !== undefined && this.plugins.has(change.pluginId)) applyShared(change);
  }

  /** Reads a plugin's state from Redis into this process: the keys of its configured entries only. */
  private async load(pluginId: string): Promise<void> {
    const nowMs = Date.now();
    const members = this.members.get(pluginId) ?? [];
    const values =
      members.length === 0
        ? []
        : await this.commands.mget(members.map((member) => `${PREFIX}:{${pluginId}}:${member}`));
    members.forEach((member, i) => {
      const change = changeOf(pluginId, member, values[i] ?? null);
      if (change !== undefined) applyShared(change, nowMs);
    });
    this.firstLoads.get(pluginId)?.settle();
  }

  /**
   * After a (re)connection: writes what was learned here while Redis was away, then reads every plugin's state.
   * The running suspensions this node decided itself are written again too (extending only, it cannot undo what
   * others learned), so a node that restarted from its state file while Redis was away shares what it
   * remembered; what it only took in from Redis is left to the node that decided it.
   */
  private resync(): void {
    if (this.closed || !this.commandsReady) return;
    if (this.syncing !== undefined) {
      this.syncAgain = true;
      return;
    }
    this.syncing = this.sync().finally(() => {
      this.syncing = undefined;
      if (this.syncAgain) {
        this.syncAgain = false;
        this.resync();
      }
    });
  }

  private async sync(): Promise<void> {
    const queued = [...this.pending.values()];
    this.pending.clear();
    const own = [...this.plugins].flatMap((pluginId) => ownSuspensions(pluginId));
    try {
      for (const change of [...own, ...queued]) await this.write(change);
      for (const pluginId of this.plugins) await this.load(pluginId);
      // Changes made while this ran were kept too (share() keeps them until the outage is over): write them
      // now, or they would wait for the next outage.
      while (this.outageSince !== undefined && this.subscriberReady && this.pending.size > 0) {
        const more = [...this.pending.values()];
        this.pending.clear();
        queued.push(...more);
        for (const change of more) await this.write(change);
      }
    } catch (error) {
      for (const change of queued) this.keep(change);
      this.outage(messageOf(error));
      return;
    }
    if (this.outageSince !== undefined && this.subscriberReady) {
      const seconds = ((Date.now() - this.outageSince) / 1000).toFixed(1);
      this.log(
        `Redis at ${this.where} is back after ${seconds} s: shared ${queued.length} change(s) made meanwhile and took in the cluster's state`,
      );
      this.outageSince = undefined;
      this.retryDelayMs = RECONNECT_FIRST_MS;
    }
  }

  /** Redis failed: the first failure of an outage is logged, later ones only retried. */
  private outage(reason: string): void {
    if (this.closed) return;
    if (this.outageSince === undefined) {
      this.outageSince = Date.now();
      this.log(
        `Redis at ${this.where} is unavailable (${reason}): serving from this node's own state, sharing again when it is back`,
      );
    }
    // A connection that stays open while Redis does not answer (a slow or paused server) gets no "ready" to
    // resume on: retry the sync with a backoff of its own.
    if (this.retry === undefined) {
      this.retry = setTimeout(() => {
        this.retry = undefined;
        this.retryDelayMs = Math.min(this.retryDelayMs * 2, RECONNECT_MAX_MS);
        this.resync();
      }, this.retryDelayMs).unref();
    }
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function connectionOptions(settings: RedisSettings): RedisOptions {
  const timeout = settings.timeoutMs > 0 ? settings.timeoutMs : undefined;
  return {
    host: settings.host,
    port: settings.port,
    db: settings.database,
    ...(settings.username !== undefined && { username: settings.username }),
    ...(settings.password !== undefined && { password: settings.password }),
    ...(settings.ssl && {
      tls: { rejectUnauthorized: settings.sslVerify, servername: settings.serverName ?? settings.host },
    }),
    connectTimeout: timeout,
    commandTimeout: timeout,
    // A command sent while the connection drops fails instead of waiting for a reconnection.
    maxRetriesPerRequest: 0,
    retryStrategy: (times: number) =>
      Math.min(RECONNECT_FIRST_MS * 2 ** Math.min(times - 1, 10), RECONNECT_MAX_MS),
    // Connections are made when a plugin configuration asks for them, never by loading the module.
    lazyConnect: false,
  };
}

/** The members (key tails) of every entry of a configuration: its suspension and its probe mark. */
function membersOf(config: Pick<RoundRobinConfig, "production" | "sandbox">): string[] {
  const out: string[] = [];
  for (const env of ["production", "sandbox"] as const)
    for (const entry of config[env] ?? []) out.push(`s|${env}|${entry.key}`, `p|${env}|${entry.key}`);
  return out;
}

/** The member an entry's state has in the plugin's index (and the tail of its key). */
function memberOf(change: SharedChange): string {
  const kind = change.kind === "suspended" || change.kind === "lifted" ? "s" : "p";
  return `${kind}|${change.env}|${change.entryKey}`;
}

function changeOf(pluginId: string, member: string, value: string | null): SharedChange | undefined {
  if (value === null) return undefined;
  const [kind, env] = member.split("|", 2);
  if (kind === undefined || !isEnvironment(env)) return undefined;
  const entryKey = member.slice(kind.length + env.length + 2);
  if (kind === "p") return { kind: "suspect", pluginId, env, entryKey };
  if (kind !== "s") return undefined;
  const space = value.indexOf(" ");
  const untilMs = Number(space === -1 ? value : value.slice(0, space));
  if (!Number.isFinite(untilMs)) return undefined;
  return {
    kind: "suspended",
    pluginId,
    env,
    entryKey,
    untilMs,
    reason: space === -1 ? "" : value.slice(space + 1),
  };
}

/** A change from the channel, checked field by field: another version of the plugin may have sent it. */
function asChange(value: unknown): SharedChange | undefined {
  const c = value as Partial<Record<string, unknown>> | null;
  if (c === null || typeof c !== "object") return undefined;
  const { kind, pluginId, env, entryKey } = c;
  if (typeof pluginId !== "string" || typeof entryKey !== "string" || !isEnvironment(env)) return undefined;
  if (kind === "suspect" || kind === "probe-taken" || kind === "lifted")
    return { kind, pluginId, env, entryKey };
  if (kind !== "suspended" || typeof c.untilMs !== "number") return undefined;
  const reason = typeof c.reason === "string" ? c.reason : "";
  return { kind, pluginId, env, entryKey, untilMs: c.untilMs, reason };
}

function isEnvironment(value: unknown): value is Environment {
  return value === "production" || value === "sandbox";
}
