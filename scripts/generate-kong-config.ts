#!/usr/bin/env node
/**
 * Generates kong/kong.yml, the DB-less configuration of one node, by converting APK's example 01 with the
 * converter (open routes: --auth none, for the local example), and kong/kong-cluster.yml, the same with policy redis, which both Kong nodes of docker-compose
 * load. APK's files are not part of this repository: they are read from ../shared/apk (next to the repository's
 * root), a checkout of WSO2 APK's examples. A cross-check test, skipped without ../shared/apk, fails when the
 * committed kong.yml drifts from this output; another checks kong-cluster.yml against kong.yml (no APK needed).
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { isMap, isSeq, parseDocument, type YAMLMap } from "yaml";
import { convertApkConf } from "../converter/convert";

export const EXAMPLE = "01-apk-test-modelroundrobin-api-level-policy-multi-endpoints.apk-conf.yaml";
/** The Redis service of docker-compose.yml, which the cluster configuration's plugins share their state in. */
export const CLUSTER_REDIS_HOST = "redis";
/**
 * The Redis password, as every node's plugin reads it: a reference to Kong's env vault, which reads the
 * environment variable CLUSTER_REDIS_PASSWORD_ENV (docker-compose.yml gives it to the nodes and to Redis alike),
 * so the password is in no configuration file and never in the Admin API's answers.
 */
export const CLUSTER_REDIS_PASSWORD = "{vault://env/mbrr-redis-password}";
export const CLUSTER_REDIS_PASSWORD_ENV = "MBRR_REDIS_PASSWORD";
const PLUGIN = "model-based-round-robin";

export function generateKongConfig(repoRoot: string): string {
  const file = resolve(repoRoot, "../shared/apk/examples", EXAMPLE);
  if (!existsSync(file)) {
    throw new Error(
      `${file} does not exist: kong/kong.yml is generated from WSO2 APK's example ${EXAMPLE}, which is not part of this repository; put APK's examples in ../shared/apk/examples (next to the repository) and run again`,
    );
  }
  // --auth none: example 01's operations are secured (APK's default), but this configuration is the local
  // example's (mock providers, the README's curls, the demo), which its users call without a key; its header
  // says loudly that the routes are open, and docs/converter.md how to secure a real API's.
  return convertApkConf(readFileSync(file, "utf8"), { fileName: EXAMPLE, auth: "none" }).yaml;
}

/**
 * A node's declarative configuration made into a cluster's: every model-based-round-robin plugin gets
 * `policy: redis`, `redis.host` and `redis.password` (a vault reference), everything else (comments, order, anchors) is kept as it is. Every node loads
 * the same file, so each plugin gets the same id on every node (Kong derives the ids a declarative file does
 * not give from names and cache keys), and that id is what the nodes share state under.
 */
export function clusterConfig(single: string, redisHost = CLUSTER_REDIS_HOST): string {
  const doc = parseDocument(single);
  let found = 0;
  const visit = (node: unknown): void => {
    if (isSeq(node)) {
      for (const item of node.items) visit(item);
      return;
    }
    if (!isMap(node)) return;
    const plugins = node.get("plugins");
    if (isSeq(plugins)) {
      for (const plugin of plugins.items) {
        if (!isMap(plugin) || plugin.get("name") !== PLUGIN) continue;
        let config = plugin.get("config");
        if (!isMap(config)) {
          config = doc.createNode({});
          plugin.set("config", config);
        }
        (config as YAMLMap).set("policy", "redis");
        (config as YAMLMap).set(
          "redis",
          doc.createNode({ host: redisHost, password: CLUSTER_REDIS_PASSWORD }),
        );
        found++;
      }
    }
    for (const key of ["services", "routes"]) visit(node.get(key));
  };
  visit(doc.contents);
  if (found === 0) throw new Error(`no ${PLUGIN} plugin in the configuration`);
  const header = [
    "# kong/kong.yml for a cluster (docker-compose.yml's two Kong nodes load it): every model-based-round-robin",
    `# plugin with policy: redis and redis.host: ${redisHost}, so the nodes share suspensions through that Redis;`,
    `# redis.password reads ${CLUSTER_REDIS_PASSWORD_ENV} from the node's environment through Kong's env vault.`,
    "# Generated from kong/kong.yml by `npm run generate-kong-config`; do not edit.",
  ].join("\n");
  return `${header}\n${doc.toString({ lineWidth: 0 })}`;
}

if (require.main === module) {
  const root = resolve(__dirname, "../..");
  try {
    const single = generateKongConfig(root);
    writeFileSync(resolve(root, "kong/kong.yml"), single);
    writeFileSync(resolve(root, "kong/kong-cluster.yml"), clusterConfig(single));
  } catch (error) {
    process.stderr.write(`generate-kong-config: ${(error as Error).message}\n`);
    process.exit(1);
  }
  process.stderr.write("wrote kong/kong.yml and kong/kong-cluster.yml\n");
}
