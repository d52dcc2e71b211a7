/**
 * A PDK call Kong never answers (Kong raised a Lua error, so no reply comes) is abandoned by the project's
 * plugin server after a bound (65 s by default, shortened here with the start command's --pdk-call-timeout-ms), and
 * calls made after kong.response.exit are refused at once: the handler's promise settles, nothing stays in
 * the events map. The fixture probe plugin and the Kong double's emulation of Kong's silent Lua errors.
 */
import { resolve } from "node:path";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KongDouble } from "../../kong-double";
import { serverStatus, waitFor } from "./support";

describe("a PDK call Kong never answers", () => {
  const BOUND_MS = 1500;
  let kong: KongDouble;

  beforeAll(async () => {
    kong = await KongDouble.start({
      pluginServers: [
        {
          name: "probe",
          pluginsDirectory: resolve(process.cwd(), "spec/fixtures/plugins/probe"),
          // A flag of the start command: a Kong-managed server sees no environment.
          args: ["--pdk-call-timeout-ms", String(BOUND_MS)],
        },
      ],
    });
    await kong.loadConfig({
      _format_version: "3.0",
      services: [
        {
          name: "svc",
          url: "http://127.0.0.1:9",
          routes: [{ name: "r", paths: ["/probe"] }],
          plugins: [{ name: "probe", config: {} }],
        },
      ],
    });
  });
  afterAll(async () => kong?.stop());

  const probe = async (what: string) => {
    const res = await request(`${kong.proxyUrl}/probe/x`, { headers: { "x-probe": what } });
    await res.body.dump();
    return res.statusCode;
  };

  it("is abandoned after the bound: the handler's await rejects, the handler ends, the event is removed", async () => {
    // The probe sets a nil header: Kong raises a Lua error, answers the client 500 and never replies.
    expect(await probe("nil-header")).toBe(500);
    await kong.settled();
    const waiting = await serverStatus(kong, "probe");
    expect(waiting).toMatchObject({ events: 1, awaitingKong: 1, abandonedCalls: 0 });

    const after = await waitFor(
      () => serverStatus(kong, "probe"),
      (s) => s.abandonedCalls === 1,
      BOUND_MS + 5000,
    );
    expect(after).toMatchObject({ events: 0, awaitingKong: 0, abandonedCalls: 1 });
    const messages = kong.logs.map((l) => l.message);
    expect(
      messages.some((m) =>
        m.includes(`[WARN] Kong did not answer kong.service.request.set_header within ${BOUND_MS} ms`),
      ),
    ).toBe(true);
    // The rejection reached the handler, which did not catch it: kong-pdk logs that and queues "ret".
    expect(
      messages.some((m) =>
        /\[WARN\] unhandled exception in probe.access .*PDK method kong.service.request.set_header failed/.test(
          m,
        ),
      ),
    ).toBe(true);
  });

  it("rejects at once a call made after kong.response.exit, so that handler ends too", async () => {
    const before = await serverStatus(kong, "probe");
    expect(await probe("exit-then-continue")).toBe(418);
    await kong.settled();
    const after = await waitFor(
      () => serverStatus(kong, "probe"),
      (s) => s.events === 0,
      5000,
    );
    expect(after.events).toBe(0);
    expect(after.endedByExit).toBe(before.endedByExit + 1);
    expect(
      kong.logs.some((l) =>
        /unhandled exception in probe.access .*kong.request.get_header failed: +event #\d+ has ended/.test(
          l.message,
        ),
      ),
    ).toBe(true);
  });
});
