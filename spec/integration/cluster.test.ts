/**
 * policy `redis`, the proof the issue asks for: two Kong nodes (two doubles, each with its own plugin server)
 * share one real redis-server and load the same declarative configuration. What one node learns reaches the
 * other within 100 ms; while Redis is away (stopped, or frozen with its connections open) both serve from their
 * own state and say so once; once Redis is back what was learned meanwhile is shared; a restarted plugin server
 * starts from the cluster's state; billing probes are spent once for the cluster; the keys are the plugin's own,
 * expire with their suspension and never outlive it.
 *
 * Each test loads the configuration under a fresh plugin id, so no state carries over between tests (the keys are
 * per plugin id); every configuration names the same Redis with the same settings, so each plugin server keeps one
 * link to it, whose outage is logged once.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { KongDouble } from "../../kong-double";
import {
  freePort,
  HAS_REDIS_SERVER,
  type RedisServer,
  redisServerBin,
  startRedisServer,
} from "../../scripts/lib/redis-server";
import { type MockProvider, startMockProvider } from "../../scripts/mock-provider";
import {
  BILLING_EXHAUSTED,
  chat,
  DIRECT,
  llmService,
  PLUGIN_DIR,
  PLUGIN_NAME,
  pause,
  send,
} from "../support/harness";

/** A service URL that never resolves: without the plugin's rewrite nothing reaches a provider. */
const REFUSING_URL = "http://unrouted.model-based-round-robin.invalid:9/v1";
const HELLO = { model: "client-choice", messages: [{ role: "user", content: "hi" }] };
const MODELS = ["m-a", "m-b", "m-c", "m-d"] as const;
type Model = (typeof MODELS)[number];
const STATE_FILE_ENV = "MODEL_BASED_ROUND_ROBIN_STATE_FILE";
/** What every configuration of the shared Redis says besides host and port. */
const REDIS_TIMEOUT_MS = 500;
/** Node A takes operator actions on its status listener with this token. */
const OPERATOR_TOKEN = "cluster-operator-token-0123456789";

interface Node {
  name: string;
  kong: KongDouble;
}

describe("policy redis: two Kong nodes share suspensions through one Redis", () => {
  let redis: RedisServer;
  /** One provider per entry: provider-a serves m-a, and so on, so GET /models tells which entry answered. */
  let providers: MockProvider[];
  let a: Node;
  let b: Node;

  beforeAll(async () => {
    // Without redis-server each test fails in beforeEach, saying how to install it.
    if (!HAS_REDIS_SERVER) return;
    redis = await startRedisServer();
    providers = await Promise.all(MODELS.map((_, i) => startMockProvider({ name: `provider-${"abcd"[i]}` })));
    const node = async (name: string, env: Record<string, string> = {}): Promise<Node> => ({
      name,
      kong: await KongDouble.start({
        // Run outside Kong (as the image does): a Kong-managed server would not see the variables.
        pluginServers: [{ name: PLUGIN_NAME, pluginsDirectory: PLUGIN_DIR, supervised: true, env }],
      }),
    });
    // A serves its status on a free port: it shows whether the state is being shared.
    a = await node("A", {
      MODEL_BASED_ROUND_ROBIN_STATUS_LISTEN: "127.0.0.1:0",
      MODEL_BASED_ROUND_ROBIN_OPERATOR_TOKEN: OPERATOR_TOKEN,
    });
    // No state file on B: what a restarted B knows can only have come from Redis.
    b = await node("B", { [STATE_FILE_ENV]: "" });
  });

  afterAll(async () => {
    await Promise.all([a?.kong.stop(), b?.kong.stop()]);
    await Promise.all((providers ?? []).map((p) => p.close()));
    await redis?.close();
  });

  beforeEach(async () => {
    if (!HAS_REDIS_SERVER) redisServerBin();
    if (!redis.running) await redis.start();
    for (const p of providers) {
      p.reset();
      p.clearRequests();
    }
  });

  const provider = (model: Model) => providers[MODELS.indexOf(model)] as MockProvider;
  /** The chat requests that reached the entry's provider (GET /models peeks are not counted). */
  const chatsTo = (model: Model) => provider(model).requests.filter((r) => r.method === "POST").length;

  const sharedRedis = () => ({ host: redis.host, port: redis.port, timeout: REDIS_TIMEOUT_MS });
  /** The plugin config every node gets: the four entries in order, policy redis on the shared Redis. */
  const pluginConfig = (extra: Record<string, unknown> = {}) => ({
    production_models: MODELS.map((model) => ({ model, endpoint: `${provider(model).url}/v1` })),
    policy: "redis",
    redis: sharedRedis(),
    // No billing probe marks unless a test asks for them: a 429 leaves one key per suspended entry.
    insufficient_quota_suspend_duration: 0,
    ...DIRECT,
    ...extra,
  });

  /** The same declarative configuration, with the plugin under one fresh id, on both nodes; returns the id. */
  async function configure(extra: Record<string, unknown> = {}): Promise<string> {
    const config = llmService(pluginConfig(extra)) as {
      services: { url: string; retries?: number; plugins: { id?: string }[] }[];
    };
    const [service] = config.services;
    const plugin = service?.plugins[0];
    if (service === undefined || plugin === undefined) throw new Error("llmService changed shape");
    const id = randomUUID();
    plugin.id = id;
    service.url = REFUSING_URL;
    service.retries = 0;
    await Promise.all([a.kong.loadConfig(config), b.kong.loadConfig(config)]);
    return id;
  }

  /** One chat request: the model that answered, or the status when it is not a 200. */
  async function pick(node: Node): Promise<Model | number> {
    const reply = await chat(node.kong, HELLO);
    await node.kong.settled();
    return reply.status === 200 ? (reply.json.model as Model) : reply.status;
  }

  async function picks(node: Node, n: number): Promise<(Model | number)[]> {
    const out: (Model | number)[] = [];
    for (let i = 0; i < n; i++) out.push(await pick(node));
    return out;
  }

  /**
   * The entry the node's next request would go to, without taking its turn: GET /models goes to the entry the
   * rotation would pick next (a peek), and the provider that answers names itself.
   */
  async function next(node: Node): Promise<Model | number> {
    const reply = await send(node.kong, { method: "GET", path: "/openai/v1/models" });
    if (reply.status !== 200) return reply.status;
    const owner = reply.json?.data?.[0]?.owned_by as string;
    return MODELS["abcd".indexOf(owner.slice(-1))] as Model;
  }

  /** Queues a 429 with retry-after for the next request to `model`. */
  const rateLimit = (model: Model, retryAfter: string, more: { delayMs?: number } = {}) =>
    provider(model).failNext({ status: 429, headers: { "retry-after": retryAfter }, model, ...more });

  /** Sends on the node until a request answers 429 (the queued one); fails after `limit` requests. */
  async function until429(node: Node, limit = MODELS.length): Promise<void> {
    for (let i = 0; i < limit; i++) if ((await pick(node)) === 429) return;
    throw new Error(`no 429 on node ${node.name} in ${limit} requests`);
  }

  /** Resolves once `models` are all out of the node's rotation: two rounds of requests go to none of them. */
  /**
   * Waits until `node` skips `models`. The deadline is where a test gives up, not a figure it judges: a change
   * reaches the other node in milliseconds on an idle machine and in seconds on a loaded one (npm run bench
   * measures it).
   */
  const skips = (node: Node, models: Model[]) =>
    vi.waitFor(
      async () => {
        const seen = await picks(node, 2 * (MODELS.length - models.length));
        for (const model of models) expect(seen).not.toContain(model);
        expect(seen.every((m) => typeof m === "string")).toBe(true);
      },
      { timeout: 15_000, interval: 50 },
    );

  /** The plugin server's lines about this Redis (stderr, "[model-based-round-robin] Redis at ..."). */
  const redisLines = (node: Node, what: "is unavailable" | "is back after", port = redis.port) =>
    node.kong.logs.filter(
      (l) =>
        l.source === "server" &&
        l.message.includes(`[model-based-round-robin] Redis at ${redis.host}:${port}/0 ${what}`),
    ).length;

  /** An entry's key: its endpoint (scheme, host, port and path) and model. */
  const entryKey = (model: Model) => `${provider(model).url}/v1#${model}`;
  const suspensionKey = (pluginId: string, model: Model) =>
    `model-based-round-robin:{${pluginId}}:s|production|${entryKey(model)}`;

  const keysOf = (pluginId: string) => redis.client().keys(`model-based-round-robin:{${pluginId}}:*`);
  /**
   * The plugin's keys once there are `count` of them, sorted: a node writes after its answer has gone out (the
   * request path never waits for Redis), so a key may come a moment after the request that caused it.
   */
  const keysWhen = (pluginId: string, count: number) =>
    vi.waitFor(async () => {
      const keys = await keysOf(pluginId);
      expect(keys).toHaveLength(count);
      return keys.sort();
    });

  /** What node A's status listener says of the Redis links (the address is logged once it listens). */
  async function redisStatusOfA(): Promise<{ redis: string; sharing: boolean; outage_since?: string }[]> {
    const line = await vi.waitFor(() => {
      const found = a.kong.logs.find((l) => /status listener on http:\/\/[\d.]+:\d+/.test(l.message));
      expect(found).toBeDefined();
      return found?.message ?? "";
    });
    const url = /http:\/\/[\d.]+:\d+/.exec(line)?.[0];
    const res = await fetch(`${url}/status`);
    return ((await res.json()) as { redis: { redis: string; sharing: boolean }[] }).redis;
  }

  /** An operator action on node A's status listener: its status and JSON answer. */
  async function actOnA(action: "lift" | "drain", body: Record<string, unknown>) {
    const line = await vi.waitFor(() => {
      const found = a.kong.logs.find((l) => /status listener on http:\/\/[\d.]+:\d+/.test(l.message));
      expect(found).toBeDefined();
      return found?.message ?? "";
    });
    const url = /http:\/\/[\d.]+:\d+/.exec(line)?.[0];
    const res = await fetch(`${url}/actions/${action}`, {
      method: "POST",
      headers: { authorization: `Bearer ${OPERATOR_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    // biome-ignore lint/suspicious/noExplicitAny: the test reads the answer's fields by name
    return { status: res.status, json: (await res.json()) as any };
  }

  const crashes = (node: Node) =>
    node.kong.logs.filter((l) => l.source === "kong" && /external pluginserver .* terminated/.test(l.message))
      .length;

  it("skips on node B the entry that answered 429 on node A", async () => {
    /** One trial under a fresh plugin id: how long after A's 429 was answered a request on B skipped m-a. */
    const trial = async (): Promise<number> => {
      await configure();
      // Both nodes have met the configuration (and read the cluster's state); B would go to m-a next.
      expect(await next(a)).toBe("m-a");
      expect(await next(b)).toBe("m-a");
      rateLimit("m-a", "30");
      const reply = await chat(a.kong, HELLO);
      const answered = performance.now();
      expect(reply.status).toBe(429);
      // A deadline to give up at, not a figure judged: how soon B knew is printed (and measured by npm run bench).
      while (performance.now() - answered < 15_000) {
        const entry = await next(b);
        if (entry !== "m-a") {
          expect(entry).toBe("m-b");
          // Measured to the end of B's request: an upper bound of the propagation itself.
          const knownAfterMs = performance.now() - answered;
          expect(await picks(b, 6)).toEqual(["m-b", "m-c", "m-d", "m-b", "m-c", "m-d"]);
          expect(chatsTo("m-a")).toBe(1);
          return knownAfterMs;
        }
      }
      return Number.POSITIVE_INFINITY;
    };
    // Three trials: each must see B skip m-a, whatever else the machine runs.
    const times: number[] = [];
    for (let i = 0; i < 3; i++) {
      times.push(await trial());
      for (const p of providers) p.clearRequests();
    }
    console.info(
      `node B skipped m-a ${times.map((t) => t.toFixed(1)).join(", ")} ms after node A's 429 was answered`,
    );
    expect(times.every(Number.isFinite)).toBe(true);
  });

  it("lifts on every node: a 429-suspended entry lifted on node A serves again on node B, its keys gone", async () => {
    const id = await configure();
    rateLimit("m-a", "3600");
    await until429(a);
    await skips(b, ["m-a"]);
    expect(await keysWhen(id, 2)).toEqual([
      `model-based-round-robin:{${id}}:index`,
      suspensionKey(id, "m-a"),
    ]);

    const lifted = await actOnA("lift", { plugin_id: id, model: "m-a" });
    expect(lifted.status).toBe(200);
    expect(lifted.json.entries).toEqual([
      expect.objectContaining({ model: "m-a", environment: "production", changed: true, suspended: false }),
    ]);
    // The lift deleted the key (SUSPEND only ever extends one) and reached node B through the channel; the
    // answer does not wait for Redis.
    await vi.waitFor(async () => expect(await keysOf(id)).toEqual([]));
    await vi.waitFor(async () => expect(await picks(b, MODELS.length)).toContain("m-a"), {
      timeout: 5000,
      interval: 50,
    });
    expect(await picks(a, MODELS.length)).toContain("m-a");
  });

  it("drains on every node: the entry gets no traffic on A or B and shows drained in /status", async () => {
    const id = await configure();
    expect(await pick(a)).toBe("m-a");
    const drained = await actOnA("drain", { plugin_id: id, model: "m-b", seconds: 86_400 });
    expect(drained.status).toBe(200);
    expect(drained.json.entries).toEqual([
      expect.objectContaining({ model: "m-b", suspended: true, cause: "drained", signal: "operator" }),
    ]);
    const key = suspensionKey(id, "m-b");
    expect(await keysWhen(id, 2)).toContain(key);
    // Shared whole, though longer than any suspension the configuration can set.
    expect(await redis.client().pttl(key)).toBeGreaterThan(86_000_000);
    await skips(b, ["m-b"]);
    provider("m-b").clearRequests();
    await picks(a, 2 * MODELS.length);
    await picks(b, 2 * MODELS.length);
    expect(chatsTo("m-b")).toBe(0);

    const line = a.kong.logs.find((l) => /status listener on http:\/\/[\d.]+:\d+/.test(l.message));
    const url = /http:\/\/[\d.]+:\d+/.exec(line?.message ?? "")?.[0];
    // biome-ignore lint/suspicious/noExplicitAny: the test reads the report's fields by name
    const report = (await (await fetch(`${url}/status`)).json()) as any;
    expect(report.plugins[id].production.entries[1]).toMatchObject({
      model: "m-b",
      suspended: true,
      reason: "drained by an operator for 86400 s",
      cause: "drained",
      signal: "operator",
    });
  });

  it("serves on both nodes while Redis is down, suspends locally, and logs the outage once per node", async () => {
    await configure();
    expect(await next(a)).toBe("m-a");
    expect(await next(b)).toBe("m-a");
    const before = { a: redisLines(a, "is unavailable"), b: redisLines(b, "is unavailable") };
    const backBefore = { a: redisLines(a, "is back after"), b: redisLines(b, "is back after") };
    const crashesBefore = crashes(a) + crashes(b);

    expect(await redisStatusOfA()).toContainEqual(
      expect.objectContaining({ redis: `${redis.host}:${redis.port}/0`, sharing: true }),
    );

    await redis.stop();
    // Right away, and for a while: every request answered (not timed: a busy machine stretches any figure).
    for (let i = 0; i < 10; i++) {
      for (const node of [a, b]) {
        const reply = await chat(node.kong, HELLO);
        expect(reply.status).toBe(200);
      }
    }
    // Local suspensions still work: A benches m-a, B benches m-b, each for itself.
    rateLimit("m-a", "30");
    await until429(a);
    rateLimit("m-b", "30");
    await until429(b);
    const onA = await picks(a, 6);
    const onB = await picks(b, 6);
    expect(onA).not.toContain("m-a");
    expect(onB).not.toContain("m-b");
    // Neither heard of the other's suspension.
    expect(onA).toContain("m-b");
    expect(onB).toContain("m-a");

    await vi.waitFor(() => {
      expect(redisLines(a, "is unavailable") - before.a).toBe(1);
      expect(redisLines(b, "is unavailable") - before.b).toBe(1);
    });
    // Not one line per request or per reconnection attempt: still one after more traffic and retries.
    await picks(a, 4);
    await picks(b, 4);
    await pause(500);
    expect(redisLines(a, "is unavailable") - before.a).toBe(1);
    expect(redisLines(b, "is unavailable") - before.b).toBe(1);
    expect(crashes(a) + crashes(b)).toBe(crashesBefore);
    expect(await redisStatusOfA()).toContainEqual(
      expect.objectContaining({ sharing: false, outage_since: expect.any(String) }),
    );

    await redis.start();
    await vi.waitFor(
      () => {
        expect(redisLines(a, "is back after") - backBefore.a).toBe(1);
        expect(redisLines(b, "is back after") - backBefore.b).toBe(1);
      },
      { timeout: 8000, interval: 50 },
    );
  });

  it("shares again once Redis is back: what each node learned meanwhile, then new 429s as they come", async () => {
    const id = await configure();
    expect(await next(a)).toBe("m-a");
    expect(await next(b)).toBe("m-a");
    const before = {
      downA: redisLines(a, "is unavailable"),
      downB: redisLines(b, "is unavailable"),
      backA: redisLines(a, "is back after"),
      backB: redisLines(b, "is back after"),
    };

    await redis.stop();
    rateLimit("m-a", "30");
    await until429(a);
    rateLimit("m-b", "30");
    await until429(b);
    expect(await picks(b, 6)).toContain("m-a");
    await redis.start();
    // Redis restarted empty: what it holds now was written by the nodes as they reconnected.
    const started = performance.now();
    await skips(b, ["m-a", "m-b"]);
    await skips(a, ["m-a", "m-b"]);
    console.info(`shared again ${(performance.now() - started).toFixed(0)} ms after Redis restarted`);
    expect(await keysOf(id)).toHaveLength(3);
    await vi.waitFor(() => {
      expect(redisLines(a, "is back after") - before.backA).toBe(1);
      expect(redisLines(b, "is back after") - before.backB).toBe(1);
    });
    expect(redisLines(a, "is unavailable") - before.downA).toBe(1);
    expect(redisLines(b, "is unavailable") - before.downB).toBe(1);

    // Sharing is back to normal: a new 429 on B reaches A.
    rateLimit("m-c", "30");
    await until429(b);
    await skips(a, ["m-a", "m-b", "m-c"]);
    expect(await picks(a, 2)).toEqual(["m-d", "m-d"]);
  });

  it("ignores whatever else arrives on the channel, and goes on sharing", async () => {
    await configure();
    const crashesBefore = crashes(a) + crashes(b);
    for (const junk of ["null", "[]", "42", "not json", '{"change":null}', '{"change":{"kind":"suspended"}}'])
      await redis.client().publish("model-based-round-robin:changes:0", junk);
    rateLimit("m-a", "30");
    await until429(a);
    await skips(b, ["m-a"]);
    expect(crashes(a) + crashes(b)).toBe(crashesBefore);
  });

  it("starts a restarted plugin server (no state file) from the cluster's state, from its first request", async () => {
    await configure();
    expect(await next(b)).toBe("m-a");
    rateLimit("m-a", "30");
    await until429(a);
    await vi.waitFor(async () => expect(await next(b)).toBe("m-b"));

    const server = b.kong.server(PLUGIN_NAME);
    const pid = server.pid;
    server.kill("SIGKILL");
    while (server.pid === pid || server.pid === undefined) await pause(10);
    await server.whenReady();
    // A fresh rotation would start with m-a: it starts with the next entry, m-a being suspended in Redis.
    expect(await picks(b, 6)).toEqual(["m-b", "m-c", "m-d", "m-b", "m-c", "m-d"]);
    expect(chatsTo("m-a")).toBe(1);
  });

  it("gets other nodes' changes pushed to a plugin server that started while Redis was down, once it is back", async () => {
    await configure();
    expect(await next(a)).toBe("m-a");
    const backBeforeA = redisLines(a, "is back after");
    await redis.stop();
    const server = b.kong.server(PLUGIN_NAME);
    const pid = server.pid;
    server.kill("SIGKILL");
    while (server.pid === pid || server.pid === undefined) await pause(10);
    await server.whenReady();
    const backBefore = redisLines(b, "is back after");
    // Its first request waits for Redis at most redis.timeout, then it serves from its own (empty) state.
    expect(await pick(b)).toBe("m-a");

    await redis.start();
    await vi.waitFor(() => expect(redisLines(b, "is back after") - backBefore).toBe(1), {
      timeout: 8000,
      interval: 50,
    });
    await vi.waitFor(() => expect(redisLines(a, "is back after") - backBeforeA).toBe(1), { timeout: 8000 });
    rateLimit("m-a", "30");
    await until429(a);
    await skips(b, ["m-a"]);
  });

  describe("the keys in Redis", () => {
    it("are the plugin's own, expire at the suspension's deadline and leave nothing behind", async () => {
      const id = await configure();
      expect(await next(b)).toBe("m-a");
      rateLimit("m-a", "30");
      await until429(a);
      rateLimit("m-b", "1");
      await until429(a);

      const prefix = `model-based-round-robin:{${id}}:`;
      expect(await keysWhen(id, 3)).toEqual(
        [
          `${prefix}index`,
          `${prefix}s|production|${entryKey("m-a")}`,
          `${prefix}s|production|${entryKey("m-b")}`,
        ].sort(),
      );
      const client = redis.client();
      const longTtl = await client.pttl(`${prefix}s|production|${entryKey("m-a")}`);
      // TTLs shrink with the time the machine takes between the 429 and the read: the upper bounds are exact,
      // the lower ones only tell 30 s from 1 s (a 1 s key may be gone already on a busy machine: -2).
      expect(longTtl).toBeGreaterThan(1000);
      expect(longTtl).toBeLessThanOrEqual(30_000);
      const shortTtl = await client.pttl(`${prefix}s|production|${entryKey("m-b")}`);
      expect(shortTtl === -2 || (shortTtl > 0 && shortTtl <= 1000), String(shortTtl)).toBe(true);
      expect(await client.get(`${prefix}s|production|${entryKey("m-a")}`)).toMatch(
        /^\d+ HTTP 429, retry-after: 30$/,
      );

      // m-b's key goes at its deadline; m-a's stays.
      await pause(shortTtl + 50);
      expect(await keysOf(id)).toHaveLength(2);
      expect(await client.exists(`${prefix}s|production|${entryKey("m-b")}`)).toBe(0);
      // Written again (another suspension), the index drops members whose deadline has passed.
      rateLimit("m-c", "1");
      await until429(a);
      await keysWhen(id, 3);
      expect(await client.zrange(`${prefix}index`, 0, -1)).toEqual([
        `s|production|${entryKey("m-c")}`,
        `s|production|${entryKey("m-a")}`,
      ]);
    });

    it("vanish altogether once every suspension has ended", async () => {
      const id = await configure();
      expect(await next(b)).toBe("m-a");
      rateLimit("m-a", "1");
      await until429(a);
      await keysWhen(id, 2);
      await pause(1100);
      expect(await keysOf(id)).toEqual([]);
    });

    it("never take a shorter deadline: a repeat 429 with a shorter hint leaves Redis's deadline as it was", async () => {
      const id = await configure();
      expect(await next(a)).toBe("m-a");
      expect(await next(b)).toBe("m-a");
      // Both nodes send to m-a at once; the first answer says 30 s, the second (later) says 2 s. Neither answers
      // at once: on a busy machine one node's access can come after the other's 429 has reached it through
      // Redis, and it would rightly send elsewhere (seen: [429, 200] beside another test suite).
      rateLimit("m-a", "30", { delayMs: 1000 });
      rateLimit("m-a", "2", { delayMs: 1300 });
      const replies = await Promise.all([chat(a.kong, HELLO), chat(b.kong, HELLO)]);
      await Promise.all([a.kong.settled(), b.kong.settled()]);
      expect(replies.map((r) => r.status)).toEqual([429, 429]);
      await keysWhen(id, 2);
      expect(await redis.client().pttl(suspensionKey(id, "m-a"))).toBeGreaterThan(29_000);

      // A node that missed the longer deadline (here, one Redis holds that nobody published) writes its
      // shorter one in vain: Redis keeps the later deadline.
      const until = Date.now() + 60_000;
      const written = `${until} HTTP 429, retry-after: 60`;
      const key2 = suspensionKey(id, "m-b");
      await redis.client().set(key2, written, "PXAT", until);
      rateLimit("m-b", "5");
      await until429(a);
      // A's writes run in order: once its next suspension (m-c) is in Redis, its m-b write has run.
      rateLimit("m-c", "5");
      await until429(a);
      await keysWhen(id, 4);
      expect(await redis.client().get(key2)).toBe(written);
      expect(await redis.client().pttl(key2)).toBeGreaterThan(59_000);
    });

    it("take a fractional hint (retry-after-ms: 1500.5) like any other, with no outage", async () => {
      const id = await configure();
      expect(await next(b)).toBe("m-a");
      const downBefore = redisLines(a, "is unavailable");
      provider("m-a").failNext({ status: 429, headers: { "retry-after-ms": "1500.5" }, model: "m-a" });
      await until429(a);
      await skips(b, ["m-a"]);
      await keysWhen(id, 2);
      const ttl = await redis.client().pttl(suspensionKey(id, "m-a"));
      // Exact from above; from below it shrinks with the machine's pace (gone already: -2), never without expiry.
      expect(ttl === -2 || (ttl > 0 && ttl <= 1501), String(ttl)).toBe(true);
      expect(redisLines(a, "is unavailable")).toBe(downBefore);
    });
  });

  describe("billing probes", () => {
    const billingConfig = () =>
      configure({
        production_models: [
          { model: "m-a", endpoint: `${provider("m-a").url}/v1` },
          { model: "m-b", endpoint: `${provider("m-b").url}/v1` },
        ],
        on_quota_exceed_suspend_duration: 1,
        insufficient_quota_suspend_duration: 120,
      });
    const buffered = (node: Node) =>
      node.kong.pdkCalls.byPhase("access")["kong.service.request.enable_buffering"] ?? 0;

    /** A 429 on A (insufficient_quota in its body, unread) suspends m-a for 1 s and marks it for a probe. */
    async function suspectOnA(pluginId: string, probeAnswers: "ok" | "insufficient_quota") {
      expect(await next(b)).toBe("m-a");
      provider("m-a").failNext({
        status: 429,
        body: BILLING_EXHAUSTED,
        model: "m-a",
        times: probeAnswers === "ok" ? 1 : 2,
      });
      expect(await pick(a)).toBe(429);
      const [, mark] = await keysWhen(pluginId, 3);
      expect(mark).toMatch(/:p\|production\|.*#m-a$/);
      await pause(1100);
      a.kong.pdkCalls.reset();
      b.kong.pdkCalls.reset();
      return mark as string;
    }

    it("is taken by one node only: B probes the entry whose 429 it never saw, and A then spends no request on it", async () => {
      const id = await billingConfig();
      const mark = await suspectOnA(id, "ok");
      // B's next request to m-a is the probe: proxied buffered; the answer is a 200, so m-a is back.
      expect(await pick(b)).toBe("m-a");
      expect(buffered(b)).toBe(1);
      await vi.waitFor(async () => expect(await redis.client().exists(mark)).toBe(0));
      // A was told the probe was taken: its own next request to m-a is streamed as usual.
      expect(await picks(a, 2)).toEqual(["m-b", "m-a"]);
      expect(buffered(a)).toBe(0);
    });

    it("benches the entry on every node when the probe reads insufficient_quota", async () => {
      const id = await billingConfig();
      await suspectOnA(id, "insufficient_quota");
      expect(await pick(b)).toBe(429);
      expect(buffered(b)).toBe(1);
      await skips(a, ["m-a"]);
      expect(buffered(a)).toBe(0);
      const bench = (await keysOf(id)).find((k) => k.includes(":s|")) as string;
      expect(await redis.client().pttl(bench)).toBeGreaterThan(118_000);
    });
  });

  it("keeps serving, without crashing, when Redis stops answering (frozen, connections open)", async () => {
    // Both nodes are connected to Redis (they have met a configuration on it).
    await configure();
    expect(await next(a)).toBe("m-a");
    expect(await next(b)).toBe("m-a");
    const crashesBefore = crashes(a) + crashes(b);
    const downBefore = redisLines(a, "is unavailable");
    redis.freeze();
    try {
      // A configuration the nodes meet while Redis hangs: its first request is answered (it waits at most
      // redis.timeout; a hanging wait would end in the test's timeout).
      const id = await configure();
      for (const node of [a, b]) expect(await pick(node)).toBe("m-a");
      rateLimit("m-b", "30");
      await until429(a);
      // Past every command's timeout: the plugin servers are still the same processes, and serve.
      await pause(REDIS_TIMEOUT_MS + 300);
      expect(crashes(a) + crashes(b)).toBe(crashesBefore);
      for (const node of [a, b]) expect(typeof (await pick(node))).toBe("string");
      expect(redisLines(a, "is unavailable") - downBefore).toBe(1);
      redis.thaw();
      // Once Redis answers again, what A learned while it hung reaches B.
      await skips(b, ["m-b"]);
      expect((await keysOf(id)).some((k) => k.endsWith("#m-b"))).toBe(true);
    } finally {
      redis.thaw();
    }
  });

  describe("configuration", () => {
    it("refuses policy redis without redis.host with Kong's 400 naming redis.host", async () => {
      const post = (pluginConfig: Record<string, unknown>) =>
        fetch(`${a.kong.adminUrl}/config`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(llmService(pluginConfig)),
        });
      const entries = { production_models: [{ model: "m", endpoint: `${provider("m-a").url}/v1` }] };
      const res = await post({ ...entries, policy: "redis" });
      expect(res.status).toBe(400);
      const body = (await res.json()) as { fields: { services: { plugins: unknown[] }[] } };
      // Kong's answer to a failed conditional entity check: the field that is missing, and why it is required.
      expect(body.fields.services[0]?.plugins[0]).toEqual({
        config: { redis: { host: "required field missing" } },
        "@entity": ["failed conditional validation given value of field 'config.policy'"],
      });
      // With a host it is accepted; policy local needs none.
      expect((await post({ ...entries, policy: "redis", redis: sharedRedis() })).status).toBe(201);
      expect((await post({ ...entries, policy: "local" })).status).toBe(201);
    });

    it("serves with an unreachable Redis: every request answered, the outage logged once", async () => {
      const closedPort = await freePort();
      await configure({ redis: { host: redis.host, port: closedPort, timeout: 300 } });
      expect(await pick(a)).toBe("m-a");
      for (let i = 0; i < 5; i++) expect(typeof (await pick(a))).toBe("string");
      rateLimit("m-b", "30");
      await until429(a);
      expect(await picks(a, 4)).not.toContain("m-b");
      await vi.waitFor(() => expect(redisLines(a, "is unavailable", closedPort)).toBe(1));
    });
  });
});
