import { existsSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { KongDouble } from "../../kong-double";
import {
  imageEnvironment,
  imageSettings,
  SUPERVISED_COMMAND_ENV,
  socketPath,
} from "../../kong-double/pluginserver-settings";
import { Schema } from "../../plugins/model-based-round-robin/core/schema";
import {
  CLUSTER_REDIS_HOST,
  CLUSTER_REDIS_PASSWORD,
  CLUSTER_REDIS_PASSWORD_ENV,
  clusterConfig,
  generateKongConfig,
} from "../../scripts/generate-kong-config";
import { HAS_APK, SKIPPED_WITHOUT_APK } from "../support/apk-files";
import { contextSources, envOf, readDockerfile } from "./dockerfile";
import { isUnder } from "./imports";

const root = process.cwd();
const dockerfile = readDockerfile(readFileSync("kong/Dockerfile", "utf8"));
const finalStage = Math.max(...dockerfile.map((i) => i.stage));
const env = envOf(dockerfile, finalStage);
const settings = imageSettings(root);
const pkg = JSON.parse(readFileSync("package.json", "utf8")) as { dependencies: Record<string, string> };

describe("kong/Dockerfile", () => {
  it("builds on an official Kong 3.9.x image", () => {
    const from = dockerfile.filter((i) => i.keyword === "FROM" && i.stage === finalStage)[0];
    expect(from?.args).toMatch(/^kong:3\.9\.\d+$/);
  });

  it("sets every plugin-server variable exactly as the shared settings derive it (the double uses the same)", () => {
    for (const [key, value] of Object.entries(imageEnvironment(settings)))
      expect({ key, value: env[key] }).toEqual({ key, value });
  });

  it("points Kong at the socket the server listens on: prefix + sock name", () => {
    const key = "KONG_PLUGINSERVER_MODEL_BASED_ROUND_ROBIN";
    expect(env[`${key}_SOCKET`]).toBe(socketPath(settings));
    expect(env[SUPERVISED_COMMAND_ENV]).toContain(
      `--kong-prefix ${settings.kongPrefix} --sock-name ${settings.sockName}`,
    );
  });

  it("uses absolute commands and keeps the query command's stdout clean (no -v)", () => {
    for (const name of [SUPERVISED_COMMAND_ENV, "KONG_PLUGINSERVER_MODEL_BASED_ROUND_ROBIN_QUERY_CMD"]) {
      const command = env[name] ?? "";
      expect(command).toMatch(/^\//);
      expect(command.split(" ")).not.toContain("-v");
    }
  });

  it("puts exactly one plugin in the plugins directory, its dependencies outside it", () => {
    const copies = dockerfile
      .filter((i) => i.keyword === "COPY" && i.stage === finalStage)
      .map((i) => i.args);
    const intoPluginsDir = copies.filter(
      (c) =>
        c.split(" ").at(-1)?.startsWith(`${settings.pluginsDirectory}/`) ||
        c.endsWith(settings.pluginsDirectory),
    );
    expect(intoPluginsDir).toEqual([
      `--from=build /src/dist/plugins/model-based-round-robin ${settings.pluginsDirectory}/model-based-round-robin`,
    ]);
    expect(copies.some((c) => c.endsWith("/usr/local/kong/js-plugins/node_modules"))).toBe(true);
  });

  it("builds the plugin from the product alone: no scripts/, no spec/ in the image's build context", () => {
    const sources = contextSources(dockerfile);
    expect(sources.filter((s) => isUnder(s, "scripts") || isUnder(s, "spec"))).toEqual([]);
    expect(sources).toContain("plugins");
    expect(sources).toContain("tsconfig.plugin.json");
    const runs = dockerfile.filter((i) => i.keyword === "RUN").map((i) => i.args);
    expect(runs.some((r) => r.includes("npm run build:plugin"))).toBe(true);
  });

  it("copies every product directory the plugin build compiles, once it exists", () => {
    const pluginBuild = JSON.parse(readFileSync("tsconfig.plugin.json", "utf8")) as { include: string[] };
    const dirs = [...new Set(pluginBuild.include.map((pattern) => pattern.split("/")[0] as string))];
    expect(dirs).toEqual(["plugins", "pluginserver"]);
    const sources = contextSources(dockerfile);
    for (const dir of dirs.filter((d) => existsSync(d)))
      expect({ dir, copied: sources.includes(dir) }).toEqual({ dir, copied: true });
  });

  it("runs the project's plugin server, with kong-pdk pinned as a production dependency (npm ci --omit=dev)", () => {
    expect(pkg.dependencies["kong-pdk"]).toMatch(/^\d+\.\d+\.\d+$/);
    const runs = dockerfile
      .filter((i) => i.keyword === "RUN")
      .map((i) => i.args)
      .join("\n");
    expect(runs).toContain("npm ci --omit=dev");
    expect(runs).toContain("/usr/local/kong/js-plugins/pluginserver/main.js");
    expect(runs).toContain(`> ${settings.serverBin}`);
    const copies = dockerfile.filter((i) => i.keyword === "COPY").map((i) => i.args);
    expect(copies).toContain("--from=build /src/dist/pluginserver /usr/local/kong/js-plugins/pluginserver");
  });

  it("leaves Kong's plugin-server read timeout alone (no PDK call waits for a provider); failover_timeout stays below Kong's default read_timeout", () => {
    expect(env.KONG_NGINX_HTTP_LUA_SOCKET_READ_TIMEOUT).toBeUndefined();
    const failoverDefault = Schema.find((field) => "failover_timeout" in field)?.failover_timeout?.default;
    expect(failoverDefault).toBe(50);
    expect(failoverDefault as number).toBeLessThan(60);
  });

  it("raises the client body buffer for chat bodies, and has a health check", () => {
    expect(env.KONG_NGINX_HTTP_CLIENT_BODY_BUFFER_SIZE).toMatch(/^\d+[km]$/);
    expect(dockerfile.some((i) => i.keyword === "HEALTHCHECK" && i.args.includes("kong health"))).toBe(true);
    expect(dockerfile.filter((i) => i.keyword === "USER" && i.stage === finalStage).at(-1)?.args).toBe(
      "kong",
    );
  });
});

describe("kong/mock-provider.Dockerfile", () => {
  const mock = readDockerfile(readFileSync("kong/mock-provider.Dockerfile", "utf8"));

  it("builds the mock provider from its own directory alone: no spec/, no other code", () => {
    const code = contextSources(mock).filter(
      (s) => !/^(package(-lock)?\.json|tsconfig(\.[\w-]+)?\.json)$/.test(s),
    );
    expect(code).toEqual(["scripts/mock-provider"]);
    expect(contextSources(mock).some((s) => isUnder(s, "spec"))).toBe(false);
  });

  it("runs the command the mock provider build emits", () => {
    const cmd = mock.filter((i) => i.keyword === "CMD").at(-1)?.args ?? "";
    const script = (JSON.parse(cmd) as string[])[1] as string;
    expect(script).toBe("dist/scripts/mock-provider/cli.js");
    expect(existsSync(script)).toBe(true);
    const runs = mock.filter((i) => i.keyword === "RUN").map((i) => i.args);
    expect(runs.some((r) => r.includes("npm run build:mock-provider"))).toBe(true);
  });
});

describe("docker-compose.yml", () => {
  interface ComposeService {
    build?: unknown;
    image?: string;
    ports?: string[];
    environment?: Record<string, string>;
    volumes?: string[];
    depends_on?: Record<string, { condition?: string }>;
    healthcheck?: { test?: string[] };
    command?: string[];
  }
  const compose = parse(readFileSync("docker-compose.yml", "utf8")) as {
    services: Record<string, ComposeService>;
  };
  const kong = compose.services.kong;
  const kong2 = compose.services["kong-2"];
  const cluster = parse(readFileSync("kong/kong-cluster.yml", "utf8")) as KongYml;

  it("runs Kong DB-less on 8000/8001 with the cluster configuration mounted", () => {
    expect(kong?.ports).toEqual(["8000:8000", "8001:8001"]);
    expect(kong?.environment?.KONG_DATABASE).toBe("off");
    expect(kong?.environment?.KONG_DECLARATIVE_CONFIG).toBe("/kong/kong-cluster.yml");
    expect(kong?.volumes).toContain(
      `./kong/kong-cluster.yml:${kong?.environment?.KONG_DECLARATIVE_CONFIG}:ro`,
    );
  });

  it("leaves Kong's plugin-server read timeout alone, as the image does", () => {
    expect(kong?.environment?.KONG_NGINX_HTTP_LUA_SOCKET_READ_TIMEOUT).toBeUndefined();
  });

  it("runs a second Kong node on 8100/8101: the same image build, environment and configuration file", () => {
    expect(kong2?.ports).toEqual(["8100:8000", "8101:8001"]);
    expect(kong2?.build).toEqual(kong?.build);
    expect(kong2?.environment).toEqual(kong?.environment);
    expect(kong2?.volumes).toEqual(kong?.volumes);
    expect(kong2?.depends_on).toEqual(kong?.depends_on);
  });

  it("starts the Redis the cluster configuration's plugins point at, before both nodes", () => {
    const plugins = pluginsOf(cluster).filter((p) => p.name === "model-based-round-robin");
    expect(plugins.length).toBe(2);
    for (const plugin of plugins) {
      expect(plugin.config?.policy).toBe("redis");
      expect(plugin.config?.redis).toEqual({ host: CLUSTER_REDIS_HOST, password: CLUSTER_REDIS_PASSWORD });
    }
    const redis = compose.services[CLUSTER_REDIS_HOST];
    expect(redis?.image).toMatch(/^redis:7(\.|-|$)/);
    expect(redis?.healthcheck?.test).toEqual(["CMD", "redis-cli", "ping"]);
    // Redis asks for the password the nodes' vault reference reads (and its health check sends it).
    const password = kong?.environment?.[CLUSTER_REDIS_PASSWORD_ENV];
    expect(password).toMatch(/^\$\{MBRR_REDIS_PASSWORD:-.+\}$/);
    expect(redis?.command?.slice(-2)).toEqual(["--requirepass", password]);
    expect(redis?.environment?.REDISCLI_AUTH).toBe(password);
    expect(redis?.ports).toBeUndefined();
    for (const node of [kong, kong2])
      expect(node?.depends_on?.[CLUSTER_REDIS_HOST]?.condition).toBe("service_healthy");
  });

  it("starts the mock providers under the hosts the converted example names", () => {
    for (const file of ["kong/kong.yml", "kong/kong-cluster.yml"]) {
      const yml = readFileSync(file, "utf8");
      for (const host of ["chat-backend-1", "chat-backend-2"]) {
        expect(compose.services[host]).toBeDefined();
        expect(yml).toContain(`http://${host}:80`);
      }
    }
  });
});

describe("kong/kong.yml", () => {
  it.skipIf(!HAS_APK)(
    `is the converter's output for APK's example 01 (run \`npm run generate-kong-config\` after changing the converter) ${SKIPPED_WITHOUT_APK}`,
    () => {
      expect(readFileSync("kong/kong.yml", "utf8")).toBe(generateKongConfig(root));
    },
  );

  it("loads into the Kong double with the plugin accepted", async () => {
    const double = await KongDouble.start({
      pluginServers: [{ name: "model-based-round-robin", pluginsDirectory: "dist/plugins" }],
    });
    try {
      const config = await double.loadConfig(readFileSync("kong/kong.yml", "utf8"));
      expect(config.plugins.filter((p) => p.name === "model-based-round-robin").length).toBe(2);
    } finally {
      await double.stop();
    }
  });
});

describe("kong/kong-cluster.yml", () => {
  it("is kong/kong.yml with policy redis on every model-based-round-robin plugin (run `npm run generate-kong-config`)", () => {
    expect(readFileSync("kong/kong-cluster.yml", "utf8")).toBe(
      clusterConfig(readFileSync("kong/kong.yml", "utf8")),
    );
  });

  it("loads into the Kong double with the plugin accepted, the same plugin ids on every load (every node)", async () => {
    const double = await KongDouble.start({
      pluginServers: [{ name: "model-based-round-robin", pluginsDirectory: "dist/plugins" }],
    });
    try {
      const ids = async () =>
        (await double.loadConfig(readFileSync("kong/kong-cluster.yml", "utf8"))).plugins
          .filter((p) => p.name === "model-based-round-robin")
          .map((p) => p.id);
      const first = await ids();
      expect(first.length).toBe(2);
      expect(await ids()).toEqual(first);
    } finally {
      await double.stop();
    }
  });
});

interface KongYml {
  services?: ({ plugins?: PluginYml[]; routes?: { plugins?: PluginYml[] }[] } & Record<string, unknown>)[];
}
interface PluginYml {
  name: string;
  config?: Record<string, unknown>;
}

function pluginsOf(config: KongYml): PluginYml[] {
  return (config.services ?? []).flatMap((service) => [
    ...(service.plugins ?? []),
    ...(service.routes ?? []).flatMap((route) => route.plugins ?? []),
  ]);
}
