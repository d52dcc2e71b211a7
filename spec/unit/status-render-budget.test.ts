import { describe, expect, it } from "vitest";
import { renderBudget } from "../../plugins/model-based-round-robin/status/render-budget";

describe("status listener render budget", () => {
  it("renders fresh within the budget, then serves the latest rendering until the budget refills", async () => {
    let t = 0;
    let n = 0;
    const page = renderBudget(
      () => `render ${++n}`,
      5,
      () => t,
    );
    const fresh = [];
    for (let i = 0; i < 5; i++) fresh.push(await page.get());
    expect(fresh).toEqual(["render 1", "render 2", "render 3", "render 4", "render 5"]);
    // Past the budget: the latest rendering, however many ask.
    const burst = await Promise.all(Array.from({ length: 1000 }, () => page.get()));
    expect(new Set(burst)).toEqual(new Set(["render 5"]));
    expect(page.renders).toBe(5);
    t += 200; // one render's worth of refill
    expect(await page.get()).toBe("render 6");
    expect(await page.get()).toBe("render 6");
    t += 10_000; // a full bucket, never more
    for (let i = 0; i < 7; i++) await page.get();
    expect(page.renders).toBe(11);
  });

  it("never renders twice at once: concurrent readers share the rendering in progress", async () => {
    let release: (text: string) => void = () => undefined;
    let started = 0;
    const page = renderBudget(
      () =>
        new Promise<string>((resolve) => {
          started++;
          release = resolve;
        }),
      5,
      () => 0,
    );
    const readers = Array.from({ length: 50 }, () => page.get());
    await Promise.resolve();
    await Promise.resolve();
    expect(started).toBe(1);
    release("slow page");
    expect(new Set(await Promise.all(readers))).toEqual(new Set(["slow page"]));
  });

  it("renders again after a failed rendering, which it does not keep", async () => {
    let fail = true;
    const page = renderBudget(
      () => {
        if (fail) throw new Error("boom");
        return "ok";
      },
      5,
      () => 0,
    );
    await expect(page.get()).rejects.toThrow("boom");
    fail = false;
    expect(await page.get()).toBe("ok");
  });
});
