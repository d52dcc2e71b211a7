/**
 * Where a plugin configuration's shared state goes besides this process, by its `policy` (the counterpart of
 * rate-limiting's policies/): `local` keeps it here (core/shared-state.ts LOCAL_POLICY), `redis` shares it with
 * every node through Redis (./redis).
 */
import type { RoundRobinConfig } from "../core/config";
import { LOCAL_POLICY, type StatePolicy } from "../core/shared-state";
import { detach, type Log, type RedisLinkStatus, redisLinkStatus, redisPolicy } from "./redis";

export function policyFor(config: RoundRobinConfig, log: Log): StatePolicy {
  if (config.sharing.policy === "redis")
    return redisPolicy(config.pluginId, config.sharing.redis, log, config);
  // Switched from redis to local: the plugin's link to Redis is no longer needed.
  detach(config.pluginId);
  return LOCAL_POLICY;
}

/** The health of every shared store this process uses (the Redis links of policy `redis`), for /status and /metrics. */
export function sharingHealth(): { redis: RedisLinkStatus[] } {
  return { redis: redisLinkStatus() };
}
