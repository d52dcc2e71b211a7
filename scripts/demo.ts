#!/usr/bin/env node
/**
 * `npm run demo`: the built plugin in the project's plugin server (kong-pdk's, leak-free), behind the project's Kong test double (not
 * Kong), with two mock OpenAI-compatible providers. Sends requests and prints which model answered each, then
 * shows a 429 suspension and the all-suspended answer. Exits 0 when everything behaved as described.
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { request } from "undici";
import { KongDouble } from "./kong-double";
import { startMockProvider } from "./mock-provider";

const root = resolve(__dirname, "../..");

async function main(): Promise<void> {
  say(
    "This demo runs the plugin in the project's plugin server (built on kong-pdk) behind the project's Kong TEST DOUBLE, not Kong.",
  );
  say(
    "For real Kong, see the README (Kong 3.9 with the plugin-server settings in kong/pluginserver.json).\n",
  );
  const providerA = await startMockProvider({ name: "chat-backend-1" });
  const providerB = await startMockProvider({ name: "chat-backend-2" });
  const kong = await KongDouble.start({
    pluginServers: [{ name: "model-based-round-robin", pluginsDirectory: resolve(root, "dist/plugins") }],
  });
  let failures = 0;
  const check = (ok: boolean, what: string) => {
    if (!ok) failures++;
    say(`  ${ok ? "ok" : "NOT OK"}: ${what}`);
  };
  try {
    // The example configuration docker-compose runs (APK's example 01, converted), with the mock providers
    // standing in for its endpoints chat-backend-1 and chat-backend-2.
    const example = readFileSync(resolve(root, "kong/kong.yml"), "utf8")
      .replaceAll("http://chat-backend-1:80", providerA.url)
      .replaceAll("http://chat-backend-2:80", providerB.url);
    await kong.loadConfig(example);
    say(
      `Kong double proxy: ${kong.proxyUrl}; chat-backend-1 → ${providerA.url}, chat-backend-2 → ${providerB.url}`,
    );
    say(
      'kong/kong.yml: APK example 01 converted; weights 1:1:1; every request asks for "model": "gpt-4.5".\n',
    );

    const seen: string[] = [];
    for (let i = 1; i <= 6; i++) {
      const r = await chat(kong.proxyUrl);
      seen.push(r.model);
      say(`  request ${i}: ${r.status} answered by ${r.model} (${r.provider})`);
    }
    check(
      seen.join(" ") === "gpt-4o gpt-3.5 gpt-4.5 gpt-4o gpt-3.5 gpt-4.5",
      "the three models in rotation, the client's model overwritten",
    );
    const sandbox = await chat(kong.proxyUrl, "default.sandbox.gw.wso2.com");
    say(`  sandbox host: ${sandbox.status} answered by ${sandbox.model} (${sandbox.provider})`);
    check(
      sandbox.model === "gpt-4o" && sandbox.provider === "chat-backend-2",
      "the sandbox host gets the sandbox list",
    );

    say("\nchat-backend-1 now answers 429 (retry-after: 2) for gpt-4o:");
    providerA.failNext({ status: 429, headers: { "retry-after": "2" }, model: "gpt-4o" });
    const limited = await chat(kong.proxyUrl);
    say(`  request 8: ${limited.status} from ${limited.provider} (the client sees the provider's 429)`);
    await kong.settled();
    const during: string[] = [];
    for (let i = 9; i <= 12; i++) {
      const r = await chat(kong.proxyUrl);
      during.push(r.model);
      say(`  request ${i}: ${r.status} answered by ${r.model}`);
    }
    check(!during.includes("gpt-4o"), "gpt-4o is skipped while suspended");

    say("\nthe other models answer 429 too, so every production model is suspended:");
    providerA.failNext({ status: 429, headers: { "retry-after": "2" }, model: "gpt-4.5" });
    providerB.failNext({ status: 429, headers: { "retry-after": "2" }, model: "gpt-3.5" });
    for (let i = 0; i < 2; i++) await chat(kong.proxyUrl);
    await kong.settled();
    const refused = await chat(kong.proxyUrl);
    say(
      `  next request: ${refused.status} retry-after=${refused.retryAfter} retry-after-ms=${refused.retryAfterMs}`,
    );
    say(`  body: ${refused.text}`);
    check(
      refused.status === 503 && Number(refused.retryAfter) >= 1,
      "503 with Retry-After when every model is suspended",
    );

    say("\nafter the suspensions end:");
    await new Promise((r) => setTimeout(r, 2100));
    const back = await chat(kong.proxyUrl);
    say(`  request: ${back.status} answered by ${back.model}`);
    check(back.status === 200, "models are back in rotation");
  } finally {
    await kong.stop();
    await providerA.close();
    await providerB.close();
  }
  say(failures === 0 ? "\ndemo finished: all as described" : `\ndemo finished with ${failures} surprise(s)`);
  process.exitCode = failures === 0 ? 0 : 1;
}

async function chat(proxyUrl: string, host = "default.gw.wso2.com") {
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
  return {
    status: res.statusCode,
    model,
    provider: String(res.headers["x-mock-provider"] ?? "-"),
    retryAfter: String(res.headers["retry-after"] ?? ""),
    retryAfterMs: String(res.headers["retry-after-ms"] ?? ""),
    text,
  };
}

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`demo failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
