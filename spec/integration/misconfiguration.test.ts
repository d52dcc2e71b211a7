/**
 * Configurations Kong accepts and the plugin cannot serve, through the real plugin server behind the double:
 * each request is answered with a 500 `gateway_misconfigured` that names the problem (never proxied to the
 * service's own URL), and the problem is logged once per plugin configuration, not per request.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Bed, chat, DIRECT, llmService, PLUGIN_NAME, SANDBOX_HOST, startBed } from "../support/harness";

const HELLO = { model: "m", input: "Hello" };

describe("configurations Kong accepts and the plugin refuses", () => {
  let bed: Bed;
  let provider: Bed["providers"][number];

  beforeAll(async () => {
    bed = await startBed({ providers: 1 });
    [provider] = bed.providers as [typeof provider];
  });
  afterAll(async () => bed?.stop());

  async function configure(pluginConfig: Record<string, unknown>, serviceUrl?: string) {
    const config = llmService({ ...DIRECT, ...pluginConfig }) as {
      services: { url: string; plugins: { id?: string }[] }[];
    };
    const service = config.services[0];
    if (service === undefined || service.plugins[0] === undefined)
      throw new Error("llmService changed shape");
    if (serviceUrl !== undefined) service.url = serviceUrl;
    service.plugins[0].id = randomUUID();
    await bed.kong.loadConfig(config);
  }

  const problemLines = (text: string) =>
    bed.kong.logs.filter((l) => l.plugin === PLUGIN_NAME && l.level === "err" && l.message.includes(text))
      .length;

  it.each([
    [
      "two entries with the same endpoint and model",
      () => ({
        production_models: [
          { model: "m", endpoint: `${provider.url}/v1` },
          { model: "m", endpoint: `${provider.url}/v1/` },
        ],
      }),
      "production_models[2]: same endpoint and model as production_models[1]",
    ],
    [
      "min_suspend_duration above max_suspend_duration",
      () => ({
        production_models: [{ model: "m", endpoint: provider.url }],
        min_suspend_duration: 10,
        max_suspend_duration: 5,
      }),
      "min_suspend_duration (10) must not exceed max_suspend_duration (5)",
    ],
    [
      "unreachable_suspend_duration above unreachable_max_suspend_duration",
      () => ({
        production_models: [{ model: "m", endpoint: provider.url }],
        unreachable_suspend_duration: 60,
        unreachable_max_suspend_duration: 30,
      }),
      "unreachable_suspend_duration (60) must not exceed unreachable_max_suspend_duration (30)",
    ],
  ])(
    "%s: Kong accepts it; every request gets a 500 naming it, logged once",
    async (_name, config, problem) => {
      await configure(config());
      provider.clearRequests();
      for (let i = 0; i < 3; i++) {
        const reply = await chat(bed.kong, HELLO);
        expect(reply.status).toBe(500);
        expect(reply.json.error).toEqual({
          message: expect.stringContaining(`the model-based-round-robin plugin is misconfigured: ${problem}`),
          type: "server_error",
          param: null,
          code: "gateway_misconfigured",
        });
      }
      await bed.kong.settled();
      expect(problemLines(problem)).toBe(1);
      expect(provider.requests).toHaveLength(0);
    },
  );

  it("answers a service with an IP host and an endpoint with a host name with the fix, logged once", async () => {
    // Production's endpoint is an IP address (Kong reaches it from any service); sandbox's has a host name.
    await configure(
      {
        production_models: [{ model: "m", endpoint: provider.url }],
        sandbox_models: [{ model: "s", endpoint: "https://sandbox.provider.test/v1" }],
        sandbox_hosts: [SANDBOX_HOST],
      },
      "http://127.0.0.9:9/v1",
    );
    provider.clearRequests();
    expect((await chat(bed.kong, HELLO)).status).toBe(200);
    const message =
      "the service's host 127.0.0.9 is an IP address, so Kong will not resolve the endpoint's host name sandbox.provider.test; give the service a host name such as unrouted.model-based-round-robin.invalid";
    for (let i = 0; i < 3; i++) {
      const reply = await chat(bed.kong, HELLO, { host: SANDBOX_HOST });
      expect(reply.status).toBe(500);
      expect(reply.json.error).toEqual({
        message,
        type: "server_error",
        param: null,
        code: "gateway_misconfigured",
      });
    }
    await bed.kong.settled();
    expect(problemLines(message)).toBe(1);
    expect(provider.requests).toHaveLength(1);
  });
});
