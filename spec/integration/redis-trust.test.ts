/**
 * What the plugin takes in from Redis, against a real redis-server: the policy redis of this process (its real
 * link: two connections, the Lua scripts, the channel), fed by hand the way a hostile or broken peer could.
 * Junk naming entries the configuration lacks is never stored (memory and state file stay the configuration's
 * size), forged deadlines are clamped to what the configuration can set, and after Redis is emptied and comes
 * back a node writes back only what it decided itself.
 */
import { randomUUID } from "node:crypto";
import { mkdtempSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { balancerFor } from "../../plugins/model-based-round-robin/core/balancer";
import { normalizeConfig } from "../../plugins/model-based-round-robin/core/config";
import {
  longestSuspensionMs,
  onRejected,
  recordCount,
  resumesAt,
  suspensionOf,
} from "../../plugins/model-based-round-robin/core/process-state";
import { keepStateIn } from "../../plugins/model-based-round-robin/persistence";
import { policyFor } from "../../plugins/model-based-round-robin/policies";
import { closeAllLinks, redisLinkStatus } from "../../plugins/model-based-round-robin/policies/redis";
import { type RedisServer, redisServerBin, startRedisServer } from "../../scripts/lib/redis-server";

const CHANNEL = "model-based-round-robin:changes:0";
const A = "http://a.test:80#a";
const B = "http://b.test:80#b";
const YEAR_3000 = Date.UTC(3000, 0, 1);

/** Polls until `check` holds, for at most `ms` (a bound on waiting, never an assertion on time). */
async function until(check: () => boolean | Promise<boolean>, ms = 10_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return check();
}

describe("policy redis takes in only what the configuration could have made", () => {
  let redis: RedisServer;
  const logs: string[] = [];
  const log = (message: string) => logs.push(message);
  onRejected(log);

  beforeAll(async () => {
    redisServerBin(); // fails, saying how to install it, without redis-server
    redis = await startRedisServer();
  });
  afterAll(async () => {
    await closeAllLinks();
    await redis?.close();
  });

  /** A fresh plugin on the shared Redis with two entries, its balancer, and its state once Redis answered. */
  async function plugin() {
    const pluginId = `trust-${randomUUID()}`;
    const config = normalizeConfig({
      __plugin_id: pluginId,
      production_models: [
        { model: "a", endpoint: "http://a.test" },
        { model: "b", endpoint: "http://b.test" },
      ],
      policy: "redis",
      redis: { host: redis.host, port: redis.port, timeout: 2000 },
    });
    const policy = policyFor(config, log);
    const balancer = balancerFor(config, policy);
    await policy.ready();
    expect(await until(() => redisLinkStatus().every((link) => link.sharing))).toBe(true);
    return { pluginId, config, balancer };
  }
  const message = (change: Record<string, unknown>) => JSON.stringify({ node: "forger", change });
  const keyOf = (pluginId: string, entryKey: string) =>
    `model-based-round-robin:{${pluginId}}:s|production|${entryKey}`;

  it("stores nothing for 50,000 messages naming entries that do not exist: memory and state file stay flat", async () => {
    const { pluginId } = await plugin();
    const file = join(mkdtempSync(join(tmpdir(), "mbrr-trust-")), "state.json");
    const kept = keepStateIn(file, log);
    const records = recordCount();
    const pipeline = redis.client().pipeline();
    for (let i = 0; i < 50_000; i++) {
      pipeline.publish(
        CHANNEL,
        message({
          kind: i % 2 === 0 ? "suspended" : "suspect",
          pluginId,
          env: "production",
          entryKey: `http://junk-${i}.test:80#m`,
          untilMs: YEAR_3000,
          reason: "HTTP 429, forged",
        }),
      );
    }
    // Last, one real change: once it is in, every junk message before it has been handled.
    pipeline.publish(CHANNEL, message({ kind: "suspect", pluginId, env: "production", entryKey: B }));
    await pipeline.exec();
    const { recordOf } = await import("../../plugins/model-based-round-robin/core/process-state");
    expect(
      await until(() => recordOf({ pluginId, env: "production", entryKey: B })?.suspect === true, 150_000),
    ).toBe(true);
    expect(recordCount()).toBeLessThanOrEqual(records + 2);
    await kept.flush();
    kept.stop();
    const size = statSync(file).size;
    console.log(`50,000 junk messages: entry records ${records} -> ${recordCount()}, state file ${size} B`);
    expect(size).toBeLessThan(2000);
    expect(logs.filter((l) => l.includes("no such entry")).length).toBeLessThanOrEqual(1);
  }, 180_000);

  it("clamps a forged year-3000 deadline, read from Redis or pushed on the channel", async () => {
    const { pluginId, config } = await plugin();
    await redis.client().publish(
      CHANNEL,
      message({
        kind: "suspended",
        pluginId,
        env: "production",
        entryKey: A,
        untilMs: YEAR_3000,
        reason: "forged",
      }),
    );
    const ref = { pluginId, env: "production" as const, entryKey: A };
    expect(await until(() => resumesAt(ref, Date.now()) !== undefined)).toBe(true);
    expect(resumesAt(ref, Date.now())).toBeLessThanOrEqual(Date.now() + longestSuspensionMs(config));
    expect(suspensionOf(ref, Date.now())?.source).toBe("peer");

    // A key written straight into Redis is read when a node first meets the plugin: clamped the same way.
    const second = `trust-${randomUUID()}`;
    await redis.client().set(keyOf(second, B), `${YEAR_3000} forged`);
    const other = normalizeConfig({ ...rawOf(config, redis), __plugin_id: second });
    const policy = policyFor(other, log);
    balancerFor(other, policy);
    await policy.ready();
    const untilB = resumesAt({ pluginId: second, env: "production", entryKey: B }, Date.now());
    expect(untilB).toBeDefined();
    expect(untilB).toBeLessThanOrEqual(Date.now() + longestSuspensionMs(other));
  });

  it("after Redis was emptied and is back, writes back what it decided itself, never a suspension it only heard of", async () => {
    const { pluginId, balancer } = await plugin();
    // A forged suspension of a, in Redis and on the channel, as a peer's would be.
    const forged = {
      kind: "suspended",
      pluginId,
      env: "production",
      entryKey: A,
      untilMs: Date.now() + 300_000,
    };
    await redis.client().set(keyOf(pluginId, A), `${forged.untilMs} forged`);
    await redis.client().publish(CHANNEL, message({ ...forged, reason: "forged" }));
    const refA = { pluginId, env: "production" as const, entryKey: A };
    expect(await until(() => resumesAt(refA, Date.now()) !== undefined)).toBe(true);
    // b answered 429 here: this node's own observation.
    balancer.suspend("production", B, 120_000, Date.now(), "HTTP 429, retry-after: 120");
    expect(await until(async () => (await redis.client().exists(keyOf(pluginId, B))) === 1)).toBe(true);

    // The operator empties Redis, and the nodes reconnect (here: Redis restarts empty).
    await redis.client().flushall();
    await redis.stop();
    await redis.start();
    expect(await until(async () => (await redis.client().exists(keyOf(pluginId, B))) === 1)).toBe(true);
    expect(await until(() => redisLinkStatus().every((link) => link.sharing))).toBe(true);
    expect(await redis.client().exists(keyOf(pluginId, A))).toBe(0);
    expect(await redis.client().get(keyOf(pluginId, B))).toMatch(/^\d+ HTTP 429, retry-after: 120$/);
  });
});

/** The raw configuration behind a normalized one, as far as these tests need it. */
function rawOf(config: ReturnType<typeof normalizeConfig>, redis: RedisServer) {
  return {
    production_models: config.production.map((entry) => ({
      model: entry.model,
      endpoint: `http://${entry.host}`,
    })),
    policy: "redis",
    redis: { host: redis.host, port: redis.port, timeout: 2000 },
  };
}
