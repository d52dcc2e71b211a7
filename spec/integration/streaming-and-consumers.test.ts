import { randomUUID } from "node:crypto";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startMockProvider } from "../../scripts/mock-provider";
import { type Bed, chat, llmService, PLUGIN_NAME, startBed } from "../support/harness";

describe("streaming and consumer-selected sandbox", () => {
  let bed: Bed;

  beforeAll(async () => {
    bed = await startBed({ providers: 2 });
  });
  afterAll(async () => bed?.stop());

  it("leaves a streamed answer streaming: the first chunk arrives before the provider has finished", async () => {
    const slow = await startMockProvider({ name: "slow", streamChunkDelayMs: 150 });
    try {
      await bed.kong.loadConfig(llmService({ production_models: [{ model: "gpt-4o", endpoint: slow.url }] }));
      const sentAt = Date.now();
      const res = await request(`${bed.kong.proxyUrl}/openai/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "x", stream: true, messages: [] }),
      });
      expect(res.headers["content-type"]).toMatch(/text\/event-stream/);
      const arrivals: number[] = [];
      let text = "";
      for await (const chunk of res.body) {
        arrivals.push(Date.now() - sentAt);
        text += chunk.toString();
      }
      expect(text).toContain('"model":"gpt-4o"');
      expect(text.trim().endsWith("data: [DONE]")).toBe(true);
      // The provider spends ~750 ms writing five spaced chunks; the first must not wait for the last.
      expect(arrivals.length).toBeGreaterThan(3);
      expect((arrivals.at(-1) as number) - (arrivals[0] as number)).toBeGreaterThan(400);
    } finally {
      await slow.close();
    }
  });

  it("sends an authenticated consumer listed in sandbox_consumers to the sandbox list", async () => {
    const [prod, sandbox] = bed.providers as [Bed["providers"][number], Bed["providers"][number]];
    const config = llmService(
      {
        production_models: [{ model: "prod-model", endpoint: prod.url }],
        sandbox_models: [{ model: "sandbox-model", endpoint: sandbox.url }],
        sandbox_consumers: ["tester"],
      },
      {
        consumers: [
          { username: "tester", keyauth_credentials: [{ key: "tester-key" }] },
          { username: "customer", keyauth_credentials: [{ key: "customer-key" }] },
        ],
      },
    ) as { services: { plugins: { name: string; id?: string }[] }[] };
    config.services[0]?.plugins.push({ name: "key-auth" });
    const plugin = config.services[0]?.plugins.find((p) => p.name === PLUGIN_NAME);
    if (plugin) plugin.id = randomUUID();
    await bed.kong.loadConfig(config);

    const asTester = await chat(bed.kong, { model: "x" }, { headers: { apikey: "tester-key" } });
    const asCustomer = await chat(bed.kong, { model: "x" }, { headers: { apikey: "customer-key" } });
    const anonymous = await chat(bed.kong, { model: "x" });
    expect(asTester.json.model).toBe("sandbox-model");
    expect(asCustomer.json.model).toBe("prod-model");
    expect(anonymous.status).toBe(401);
    // A header any client can send does not pick the environment.
    const spoofed = await chat(
      bed.kong,
      { model: "x" },
      { headers: { apikey: "customer-key", "x-consumer-username": "tester" } },
    );
    expect(spoofed.json.model).toBe("prod-model");
  });
});
