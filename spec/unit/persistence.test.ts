import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it, vi } from "vitest";

type BalancerModule = typeof import("../../plugins/model-based-round-robin/core/balancer");
type ConfigModule = typeof import("../../plugins/model-based-round-robin/core/config");
type PersistenceModule = typeof import("../../plugins/model-based-round-robin/persistence");

/** A fresh copy of the plugin's modules: what a restarted plugin server process starts with. */
async function freshProcess() {
  vi.resetModules();
  const balancer: BalancerModule = await import("../../plugins/model-based-round-robin/core/balancer");
  const config: ConfigModule = await import("../../plugins/model-based-round-robin/core/config");
  const persistence: PersistenceModule = await import("../../plugins/model-based-round-robin/persistence");
  return { ...balancer, ...config, ...persistence };
}

const raw = {
  __plugin_id: "kept",
  production_models: [
    { model: "a", endpoint: "http://a.test", weight: 3 },
    { model: "b", endpoint: "http://b.test", weight: 1 },
  ],
};

function models(
  balancer: { pick(env: "production"): { kind: string; entry?: { model: string } } },
  n: number,
) {
  return Array.from({ length: n }, () => balancer.pick("production").entry?.model ?? "none").join(" ");
}

describe("what the plugin learned survives a restart of its plugin server", () => {
  it("restores suspensions, suspects and rotation positions from the state file", async () => {
    const file = join(mkdtempSync(join(tmpdir(), "mbrr-state-")), "state.json");
    const before = await freshProcess();
    const kept = before.keepStateIn(file);
    const config = before.normalizeConfig(raw);
    const balancer = before.balancerFor(config);
    expect(models(balancer, 2)).toBe("a a");
    balancer.suspend("production", config.production[0]?.key ?? "", 60_000);
    balancer.markSuspect("production", config.production[0]?.key ?? "");
    await kept.flush();
    kept.stop();

    const after = await freshProcess();
    after.keepStateIn(file).stop();
    const restored = after.balancerFor(after.normalizeConfig(raw));
    expect(models(restored, 3)).toBe("b b b");
    expect(restored.takeProbe("production", config.production[0]?.key ?? "")).toBe(true);
  });

  it("continues the rotation where it stopped, with nothing suspended", async () => {
    const file = join(mkdtempSync(join(tmpdir(), "mbrr-state-")), "state.json");
    const before = await freshProcess();
    const kept = before.keepStateIn(file);
    const uninterrupted = models(before.balancerFor(before.normalizeConfig({ ...raw, __plugin_id: "x" })), 8);
    const balancer = before.balancerFor(before.normalizeConfig(raw));
    const first = models(balancer, 3);
    await kept.flush();
    kept.stop();

    const after = await freshProcess();
    after.keepStateIn(file).stop();
    const rest = models(after.balancerFor(after.normalizeConfig(raw)), 5);
    expect(`${first} ${rest}`).toBe(uninterrupted);
  });

  it("starts empty from a missing or unreadable file, and a process that changed nothing never writes", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mbrr-state-"));
    const file = join(dir, "state.json");
    writeFileSync(file, "{not json");
    const fresh = await freshProcess();
    const problems: string[] = [];
    const kept = fresh.keepStateIn(file, (m) => problems.push(m));
    expect(problems[0]).toMatch(/ignored unreadable state file/);
    await kept.flush();
    kept.stop();
    expect(readFileSync(file, "utf8")).toBe("{not json");
    expect(models(fresh.balancerFor(fresh.normalizeConfig(raw)), 4)).toBe("a a b a");
  });

  it("reads the variable the project's plugin server sets, to a file beside its socket", async () => {
    const server = await import("../../pluginserver/state-file");
    const plugin = await import("../../plugins/model-based-round-robin/persistence");
    expect(server.STATE_FILE_ENV).toBe(plugin.STATE_FILE_ENV);
    expect(
      server.stateFileFor({ kongPrefix: "/usr/local/kong", sockName: "model-based-round-robin.sock" }),
    ).toBe("/usr/local/kong/model-based-round-robin.state.json");
  });
});
