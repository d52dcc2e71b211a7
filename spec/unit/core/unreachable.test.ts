import { describe, expect, it } from "vitest";
import { balancerFor } from "../../../plugins/model-based-round-robin/core/balancer";
import { normalizeConfig } from "../../../plugins/model-based-round-robin/core/config";
import { allSuspendedError } from "../../../plugins/model-based-round-robin/core/openai-error";

let ids = 0;
function setup(extra: Record<string, unknown> = {}) {
  const config = normalizeConfig({
    __plugin_id: `unreachable-${++ids}`,
    production_models: [
      { model: "dead", endpoint: "http://dead.test" },
      { model: "live", endpoint: "http://live.test" },
    ],
    unreachable_suspend_duration: 2,
    unreachable_max_suspend_duration: 10,
    ...extra,
  });
  const dead = config.production[0]?.key ?? "";
  return { config, balancer: balancerFor(config), dead };
}

describe("benching an endpoint Kong could not reach", () => {
  it("benches for the configured time, doubled for each bench in a row, up to the maximum", () => {
    const { balancer, dead } = setup();
    let now = 0;
    const benches: number[] = [];
    for (let i = 0; i < 5; i++) {
      const ms = balancer.benchUnreachable("production", dead, now);
      benches.push(ms);
      now += ms; // the bench ends, the next request tries it, and it fails again
    }
    expect(benches).toEqual([2000, 4000, 8000, 10_000, 10_000]);
    expect(balancer.hasStreaks()).toBe(true);
  });

  it("does not count failures of requests already in flight while the entry is benched", () => {
    const { balancer, dead } = setup();
    expect(balancer.benchUnreachable("production", dead, 0)).toBe(2000);
    expect(balancer.benchUnreachable("production", dead, 10)).toBe(0);
    expect(balancer.benchUnreachable("production", dead, 2000)).toBe(4000);
  });

  it("skips the benched entry, and starts from the shortest bench again after any answer from it", () => {
    const { balancer, dead } = setup();
    balancer.benchUnreachable("production", dead, 0);
    const picks = [0, 1, 2].map(() => balancer.pick("production", 100));
    expect(picks.map((p) => (p.kind === "picked" ? p.entry.model : p.kind))).toEqual([
      "live",
      "live",
      "live",
    ]);
    balancer.reached("production", dead);
    expect(balancer.hasStreaks()).toBe(false);
    expect(balancer.benchUnreachable("production", dead, 5000)).toBe(2000);
  });

  it("keeps streaks per environment: a dead sandbox endpoint does not bench production", () => {
    const { balancer, dead } = setup({ sandbox_models: [{ model: "dead", endpoint: "http://dead.test" }] });
    balancer.benchUnreachable("sandbox", dead, 0);
    expect(balancer.pick("production", 10)).toMatchObject({ kind: "picked", entry: { model: "dead" } });
    expect(balancer.pick("sandbox", 10)).toMatchObject({ kind: "all-suspended", retryAfterMs: 1990 });
  });

  it("says so when every entry is benched as unreachable, in its own words (not a quota)", () => {
    const { balancer, dead } = setup({ sandbox_models: [{ model: "dead", endpoint: "http://dead.test" }] });
    balancer.benchUnreachable("sandbox", dead, 0);
    expect(balancer.pick("sandbox", 10)).toMatchObject({ kind: "all-suspended", unreachable: true });
    expect(allSuspendedError("sandbox", 1990, true).error.message).toBe(
      "no sandbox endpoint could be reached: every model is benched; retry in 2 s",
    );
    balancer.suspend("production", dead, 5000, 0, "HTTP 429, no provider hint");
    balancer.benchUnreachable("production", "http://live.test:80#live", 0);
    expect(balancer.pick("production", 10)).toMatchObject({ kind: "all-suspended", unreachable: false });
  });

  it("is off with unreachable_suspend_duration 0, and refuses a base over the maximum", () => {
    const { balancer, dead } = setup({ unreachable_suspend_duration: 0 });
    expect(balancer.benchUnreachable("production", dead, 0)).toBe(0);
    expect(balancer.hasStreaks()).toBe(false);
    expect(() => setup({ unreachable_suspend_duration: 20 })).toThrow(
      /unreachable_suspend_duration \(20\) must not exceed unreachable_max_suspend_duration \(10\)/,
    );
  });
});
