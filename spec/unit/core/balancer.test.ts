import { describe, expect, it } from "vitest";
import { balancerFor, rotationCount } from "../../../plugins/model-based-round-robin/core/balancer";
import { normalizeConfig } from "../../../plugins/model-based-round-robin/core/config";

let ids = 0;
function config(weights: Record<string, number>, extra: Record<string, unknown> = {}) {
  return normalizeConfig({
    __plugin_id: `plugin-${++ids}`,
    production_models: Object.entries(weights).map(([model, weight]) => ({
      model,
      endpoint: "http://e.test",
      weight,
    })),
    ...extra,
  });
}

function picks(balancer: ReturnType<typeof balancerFor>, n: number, now = 0): string {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const p = balancer.pick("production", now);
    out.push(p.kind === "picked" ? p.entry.model : p.kind);
  }
  return out.join(" ");
}

describe("smooth weighted round robin", () => {
  it("interleaves 5:1:1 as A A B A C A A, every cycle", () => {
    expect(picks(balancerFor(config({ A: 5, B: 1, C: 1 })), 14)).toBe("A A B A C A A A A B A C A A");
  });

  it("gives 3:1 as A A B A and 1:1:1 as A B C", () => {
    expect(picks(balancerFor(config({ A: 3, B: 1 })), 8)).toBe("A A B A A A B A");
    expect(picks(balancerFor(config({ A: 1, B: 1, C: 1 })), 6)).toBe("A B C A B C");
  });

  it("keeps exact proportions over a cycle for uneven weights", () => {
    const counts: Record<string, number> = {};
    for (const m of picks(balancerFor(config({ A: 7, B: 3, C: 2 })), 120).split(" "))
      counts[m] = (counts[m] ?? 0) + 1;
    expect(counts).toEqual({ A: 70, B: 30, C: 20 });
  });

  it("skips a suspended entry and takes it back level, without a catch-up burst", () => {
    const balancer = balancerFor(config({ A: 1, B: 1 }));
    const key = (m: string) => `http://e.test:80#${m}`;
    balancer.suspend("production", key("A"), 1000, 0);
    expect(picks(balancer, 4, 500)).toBe("B B B B");
    const after = picks(balancer, 6, 1000).split(" ");
    expect(after.filter((m) => m === "A")).toHaveLength(3);
    expect(after.some((m, i) => i > 0 && m === after[i - 1])).toBe(false);
  });

  it("says when the first entry returns when every entry is suspended", () => {
    const balancer = balancerFor(config({ A: 1, B: 1 }));
    balancer.suspend("production", "http://e.test:80#A", 3000, 0);
    balancer.suspend("production", "http://e.test:80#B", 1200, 0);
    expect(balancer.pick("production", 200)).toEqual({
      kind: "all-suspended",
      retryAfterMs: 1000,
      unreachable: false,
    });
    expect(balancer.pick("production", 1200).kind).toBe("picked");
  });

  it("keeps production and sandbox apart, and says when there is no sandbox list", () => {
    const withSandbox = config({ A: 1 }, { sandbox_models: [{ model: "S", endpoint: "http://e.test" }] });
    const balancer = balancerFor(withSandbox);
    balancer.suspend("sandbox", "http://e.test:80#S", 5000, 0);
    expect(balancer.pick("production", 0)).toMatchObject({ kind: "picked" });
    expect(balancer.pick("sandbox", 0).kind).toBe("all-suspended");
    expect(balancerFor(config({ A: 1 })).pick("sandbox", 0)).toEqual({ kind: "no-list" });
  });

  it("keeps state for the same plugin id across instances, and reshapes a changed list without bursts", () => {
    const first = config({ A: 2, B: 1 });
    expect(picks(balancerFor(first), 2)).toBe("A B");
    const same = normalizeConfig({
      __plugin_id: first.pluginId,
      production_models: [
        { model: "A", endpoint: "http://e.test", weight: 2 },
        { model: "B", endpoint: "http://e.test", weight: 1 },
      ],
    });
    expect(picks(balancerFor(same), 1)).toBe("A");
    const grown = normalizeConfig({
      __plugin_id: first.pluginId,
      production_models: [
        { model: "A", endpoint: "http://e.test", weight: 2 },
        { model: "B", endpoint: "http://e.test", weight: 1 },
        { model: "N", endpoint: "http://e.test", weight: 1 },
      ],
    });
    const seq = picks(balancerFor(grown), 8).split(" ");
    expect(seq.filter((m) => m === "N")).toHaveLength(2);
    expect(seq.filter((m) => m === "A")).toHaveLength(4);
  });

  it("hands out one probe per suspect entry, per environment, until it is marked again", () => {
    const raw = {
      __plugin_id: "probes",
      production_models: [{ model: "m", endpoint: "https://a.test" }],
      sandbox_models: [{ model: "m", endpoint: "https://a.test" }],
    };
    const b = balancerFor(normalizeConfig(raw));
    const key = "https://a.test:443#m";
    expect(b.takeProbe("production", key)).toBe(false);
    b.markSuspect("production", key);
    expect(b.takeProbe("sandbox", key)).toBe(false);
    expect(b.takeProbe("production", key)).toBe(true);
    expect(b.takeProbe("production", key)).toBe(false);
    b.markSuspect("production", key);
    b.markSuspect("production", key);
    // A new instance of the same plugin id (a config reload) sees the same suspect, once.
    expect(balancerFor(normalizeConfig(raw)).takeProbe("production", key)).toBe(true);
    expect(b.takeProbe("production", key)).toBe(false);
    // An entry removed from the list takes its suspect with it; put back, it starts clean.
    b.pick("production");
    b.markSuspect("production", key);
    const other = { model: "n", endpoint: "https://a.test" };
    balancerFor(normalizeConfig({ ...raw, production_models: [other] })).pick("production");
    const restored = balancerFor(normalizeConfig(raw));
    restored.pick("production");
    expect(restored.takeProbe("production", key)).toBe(false);
  });

  it("forgets the rotation of a plugin nobody picked from for a day, but never a running suspension", () => {
    const now = Date.now();
    const day = 24 * 3600 * 1000;
    const raw = (id: string) => ({
      __plugin_id: id,
      production_models: [
        { model: "A", endpoint: "https://a.test" },
        { model: "B", endpoint: "https://a.test" },
      ],
    });
    const gone = balancerFor(normalizeConfig(raw("deleted-plugin")), undefined, now);
    gone.pick("production", now);
    gone.markSuspect("production", "https://a.test:443#A");
    const idle = balancerFor(normalizeConfig(raw("idle-but-suspended")), undefined, now);
    idle.pick("production", now);
    idle.suspend("production", "https://a.test:443#A", 2 * day, now);
    expect(rotationCount()).toBeGreaterThan(1);

    // A day later every rotation of this file is idle: only the one picked from now is left.
    balancerFor(normalizeConfig(raw("live-plugin")), undefined, now + day + 1).pick(
      "production",
      now + day + 1,
    );
    expect(rotationCount()).toBe(1);
    // Rebuilt from scratch: no suspect left, the rotation starts over.
    const back = balancerFor(normalizeConfig(raw("deleted-plugin")), undefined, now + day + 2);
    expect(back.takeProbe("production", "https://a.test:443#A")).toBe(false);
    expect(picks(back, 2, now + day + 2)).toBe("A B");
    // The idle plugin's entry is still out until its suspension ends.
    expect(picks(idle, 2, now + day + 3)).toBe("B B");
    expect(picks(idle, 2, now + 2 * day + 1)).toContain("A");
  });

  it("treats the same model on two endpoints as two entries", () => {
    const c = normalizeConfig({
      __plugin_id: "two-endpoints",
      production_models: [
        { model: "gpt-4o", endpoint: "https://a.test/v1" },
        { model: "gpt-4o", endpoint: "https://b.test/v1" },
      ],
    });
    const b = balancerFor(c);
    const hosts = [1, 2, 3, 4].map(() => {
      const p = b.pick("production", 0);
      return p.kind === "picked" ? p.entry.host : "";
    });
    expect(hosts).toEqual(["a.test", "b.test", "a.test", "b.test"]);
  });
});
