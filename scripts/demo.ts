#!/usr/bin/env node
/**
 * `npm run demo`: the built plugin in the project's plugin server (kong-pdk's, leak-free), behind the project's
 * Kong test double (not Kong), with two mock OpenAI-compatible providers and the example configuration (weights
 * set to 5:1:1, so that the smooth interleaving shows). Sends numbered requests and prints which model answered
 * each, then a 429 the client never sees (the relay fails over) and its suspension, the all-suspended answer and what the plugin server's /status says about it.
 * Exits 0 when everything behaved as described.
 */
import { resolve } from "node:path";
import { request } from "undici";
import { parse } from "yaml";
import { KongDouble } from "../kong-double";
import { localKongConfig } from "./lib/local-gateway";
import { startMockProvider } from "./mock-provider";

const root = resolve(__dirname, "../..");
/** The smooth sequence of weights 5:1:1 over gpt-4o, gpt-3.5, gpt-4.5: A A B A C A A. */
const CYCLE = ["gpt-4o", "gpt-4o", "gpt-3.5", "gpt-4o", "gpt-4.5", "gpt-4o", "gpt-4o"];

interface ExampleConfig {
  services: { plugins?: { config: { production_models: { model: string; weight: number }[] } }[] }[];
}

async function main(): Promise<void> {
  say(
    "This demo runs the plugin in the project's plugin server (built on kong-pdk) behind the project's Kong TEST DOUBLE, not Kong.",
  );
  say(
    "For real Kong, see the README (Kong 3.9 with the plugin-server settings in kong/pluginserver.json).\n",
  );
  const providerA = await startMockProvider({ name: "chat-backend-1" });
  const providerB = await startMockProvider({ name: "chat-backend-2" });
  let statusUrl: string | undefined;
  const kong = await KongDouble.start({
    pluginServers: [
      {
        name: "model-based-round-robin",
        pluginsDirectory: resolve(root, "dist/plugins"),
        // Run outside Kong, as the image runs it: a Kong-managed server would see no environment.
        supervised: true,
        env: { MODEL_BASED_ROUND_ROBIN_STATUS_LISTEN: "127.0.0.1:0" },
      },
    ],
    onLog: (line) => {
      statusUrl ??= /status listener on (http:\/\/\S+):/.exec(line.message)?.[1];
    },
  });
  let failures = 0;
  const check = (ok: boolean, what: string) => {
    if (!ok) failures++;
    say(`  ${ok ? "ok" : "NOT OK"}: ${what}`);
  };
  let sent = 0;
  /** Sends one request, numbered, and prints who answered it. */
  const chat = async (host = "default.gw.wso2.com") => {
    const reply = await send(kong.proxyUrl, host);
    sent++;
    const who = reply.status === 200 ? `answered by ${reply.model} (${reply.provider})` : reply.summary;
    say(
      `  #${String(sent).padStart(2)} ${host === "default.gw.wso2.com" ? "" : `[${host}] `}${reply.status} ${who}`,
    );
    return reply;
  };
  try {
    // The example configuration docker-compose runs (APK's example 01, converted), with the mock providers
    // standing in for its endpoints chat-backend-1 and chat-backend-2, and production weights 5:1:1.
    const example = parse(
      localKongConfig(root, { "chat-backend-1": providerA.url, "chat-backend-2": providerB.url }),
    ) as ExampleConfig;
    for (const service of example.services) {
      const models = service.plugins?.[0]?.config.production_models ?? [];
      models.forEach((model, i) => {
        model.weight = i === 0 ? 5 : 1;
      });
    }
    await kong.loadConfig(example);
    say(
      `Kong double proxy: ${kong.proxyUrl}; chat-backend-1 → ${providerA.url}, chat-backend-2 → ${providerB.url}`,
    );
    say(
      'kong/kong.yml (APK example 01 converted) with production weights gpt-4o 5, gpt-3.5 1, gpt-4.5 1; every request asks for "model": "gpt-4.5".\n',
    );

    say(
      "two cycles of 7: smooth weighted round robin interleaves the heavy model (A A B A C A A), never a block:",
    );
    const seen: string[] = [];
    for (let i = 0; i < 14; i++) seen.push((await chat()).model);
    check(
      seen.join(" ") === [...CYCLE, ...CYCLE].join(" "),
      "the three models in rotation, 5:1:1 as gpt-4o gpt-4o gpt-3.5 gpt-4o gpt-4.5 gpt-4o gpt-4o in each cycle, the client's model overwritten",
    );

    say("\nthe sandbox host gets the sandbox list (its own rotation, 1:1:1):");
    const sandbox = await chat("default.sandbox.gw.wso2.com");
    check(
      sandbox.model === "gpt-4o" && sandbox.provider === "chat-backend-2",
      "the sandbox host gets the sandbox list",
    );

    say("\nchat-backend-1 now answers 429 (retry-after: 2) for gpt-4o:");
    providerA.failNext({ status: 429, headers: { "retry-after": "2" }, model: "gpt-4o" });
    const limited = await chat();
    check(
      limited.status === 200 && limited.model !== "gpt-4o",
      "the client never sees that 429: the relay sent the same request on to the next model (failover_attempts 1)",
    );
    await kong.settled();
    const during: string[] = [];
    for (let i = 0; i < 4; i++) during.push((await chat()).model);
    check(!during.includes("gpt-4o"), "gpt-4o is skipped while suspended");

    say("\nthe other models answer 429 too, so every production model is suspended:");
    providerA.failNext({ status: 429, headers: { "retry-after": "2" }, model: "gpt-4.5" });
    providerB.failNext({ status: 429, headers: { "retry-after": "2" }, model: "gpt-3.5" });
    for (let i = 0; i < 2; i++) await chat();
    await kong.settled();
    const refused = await chat();
    say(`      body: ${refused.text}`);
    check(
      refused.status === 503 && Number(refused.retryAfter) >= 1,
      "503 with Retry-After when every model is suspended",
    );
    if (statusUrl !== undefined) {
      say(`\nwhat the plugin server's status listener says (GET ${statusUrl}/status):`);
      const report = (await (await request(`${statusUrl}/status`)).body.json()) as StatusReport;
      for (const plugin of Object.values(report.plugins)) {
        for (const entry of plugin.production?.entries ?? []) {
          if (entry.picks === 0 && !entry.suspended) continue;
          const state = entry.suspended
            ? `suspended ${entry.ms_left} ms more, ${entry.reason} (signal ${entry.signal})`
            : "in rotation";
          say(`  ${entry.model} at ${entry.endpoint}: ${entry.picks} picks, ${state}`);
        }
      }
    }

    say("\nafter the suspensions end:");
    await new Promise((r) => setTimeout(r, 2100));
    const back = await chat();
    check(back.status === 200, "models are back in rotation");
  } finally {
    await kong.stop();
    await providerA.close();
    await providerB.close();
  }
  say(
    failures === 0
      ? `\ndemo finished: ${sent} requests, all as described`
      : `\ndemo finished with ${failures} surprise(s)`,
  );
  process.exitCode = failures === 0 ? 0 : 1;
}

interface StatusReport {
  plugins: Record<
    string,
    {
      production?: {
        entries: {
          model: string;
          endpoint: string;
          picks: number;
          suspended: boolean;
          ms_left?: number;
          reason?: string;
          signal?: string;
        }[];
      };
    }
  >;
}

async function send(proxyUrl: string, host: string) {
  const res = await request(`${proxyUrl}/chat-service-prod-sand/1.0/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", host },
    body: JSON.stringify({ model: "gpt-4.5", messages: [{ role: "user", content: "Hello" }] }),
  });
  const text = await res.body.text();
  let model = "-";
  try {
    model = (JSON.parse(text) as { model?: string }).model ?? "-";
  } catch {
    // not JSON: leave "-"
  }
  const retryAfter = String(res.headers["retry-after"] ?? "");
  const retryAfterMs = String(res.headers["retry-after-ms"] ?? "");
  const provider = String(res.headers["x-mock-provider"] ?? "");
  const summary = [
    provider === "" ? "from the plugin" : `from ${provider}`,
    ...(retryAfter === "" ? [] : [`retry-after=${retryAfter}`]),
    ...(retryAfterMs === "" ? [] : [`retry-after-ms=${retryAfterMs}`]),
  ].join(", ");
  return { status: res.statusCode, model, provider, retryAfter, retryAfterMs, text, summary };
}

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`demo failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
