/**
 * The project's plugin server frees every event Kong is done with (issue 11). Through the Kong double and the
 * real server process: the built plugin refuses bad bodies with kong.response.exit(400), which Kong never
 * steps again; kong-pdk 0.6.0 kept one `events` entry per refusal until the heap ran out (150,000 refusals
 * with a 64 MB heap). Here 2,000 refusals run against a 64 MB heap: the stock server would end them with
 * 2,000 more events than it started with, this one with none. The full-size run (200,000, past the point where
 * the stock server runs out of heap, stock against this one) is `npm run chaos -- --parts 1`.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KongDouble } from "../../kong-double";
import { refuse } from "../../scripts/lib/refusals";
import { chat, DIRECT, llmService, PLUGIN_DIR, PLUGIN_NAME } from "../support/harness";
import { serverStatus } from "./support";

const REFUSALS = 2_000;
const CONCURRENCY = 16;
const ESC = "\u001b";

describe("2,000 refusals (kong.response.exit) with a 64 MB heap", () => {
  let kong: KongDouble;

  beforeAll(async () => {
    kong = await KongDouble.start({
      pluginServers: [
        {
          name: PLUGIN_NAME,
          pluginsDirectory: PLUGIN_DIR,
          // In Kong's start command: a Kong-managed server sees no environment (NODE_OPTIONS included).
          nodeArgs: ["--max-old-space-size=64"],
        },
      ],
    });
    await kong.loadConfig(
      // The direct path: access refuses the bad body with kong.response.exit, the call that leaked (through the
      // relay, the default, the relay answers it itself).
      llmService({
        ...DIRECT,
        production_models: [{ model: "m", endpoint: "http://127.0.0.1:9/v1", weight: 1 }],
      }),
    );
  });
  afterAll(async () => kong?.stop());

  it("keeps the server alive and its events map at the baseline", { timeout: 300_000 }, async () => {
    const warmup = await chat(kong, "{");
    expect(warmup.status).toBe(400);
    await kong.settled();
    const baseline = await serverStatus(kong, PLUGIN_NAME);
    const pid = kong.server(PLUGIN_NAME).pid;

    const statuses = new Map<number, number>();
    const started = Date.now();
    await refuse(kong, REFUSALS, CONCURRENCY, statuses);
    const seconds = (Date.now() - started) / 1000;
    await kong.settled();

    expect(Object.fromEntries(statuses)).toEqual({ 400: REFUSALS });
    const after = await serverStatus(kong, PLUGIN_NAME);
    expect(kong.server(PLUGIN_NAME).pid).toBe(pid);
    expect(kong.logs.some((l) => /external pluginserver .* terminated/.test(l.message))).toBe(false);
    expect(after.events).toBe(baseline.events);
    expect(after.awaitingKong).toBe(0);
    expect(after.endedByExit - baseline.endedByExit).toBe(REFUSALS);
    expect(after.instances).toBe(baseline.instances);
    // For the record (the test asserts no speed or memory figure): shown with --reporter=verbose.
    console.info(
      `${REFUSALS} refusals in ${seconds.toFixed(1)} s; heap ${(baseline.heapUsed / 1e6).toFixed(1)} MB → ` +
        `${(after.heapUsed / 1e6).toFixed(1)} MB, events ${baseline.events} → ${after.events}`,
    );
  });

  it("writes log lines without ANSI escape codes", () => {
    const serverLines = kong.logs.filter((l) => l.source === "server");
    expect(
      serverLines.some((l) => /\[INFO\] instance #\d+ of model-based-round-robin started/.test(l.message)),
    ).toBe(true);
    expect(serverLines.filter((l) => l.message.includes(ESC))).toEqual([]);
  });
});
