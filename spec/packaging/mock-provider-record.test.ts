/**
 * The mock provider keeps the newest requests it got, up to a byte budget of bodies: a load run through it (the
 * bench, 1 MB bodies) must not grow it without end.
 */
import { afterEach, describe, expect, it } from "vitest";
import { type MockProvider, startMockProvider } from "../../scripts/mock-provider";

let mock: MockProvider | undefined;
afterEach(async () => {
  await mock?.close();
  mock = undefined;
});

const chat = (provider: MockProvider, filler: string) =>
  fetch(`${provider.url}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "gpt-4o", filler }),
  }).then((response) => response.arrayBuffer());

describe("the mock provider's record of requests", () => {
  it("drops the oldest once the bodies kept pass recordBytes, and keeps the newest", async () => {
    mock = await startMockProvider({ name: "bounded", recordBytes: 2500 });
    for (const mark of ["a", "b", "c", "d"]) await chat(mock, mark.repeat(1000));
    const kept = mock.requests.map((r) => (r.json as { filler: string }).filler[0]);
    expect(kept).toEqual(["c", "d"]);
    expect(mock.requests.reduce((sum, r) => sum + r.body.length, 0)).toBeLessThanOrEqual(2500);
  });

  it("keeps a single request larger than the budget, and starts counting again after clearRequests", async () => {
    mock = await startMockProvider({ name: "bounded", recordBytes: 500 });
    await chat(mock, "x".repeat(1000));
    expect(mock.requests).toHaveLength(1);
    mock.clearRequests();
    await chat(mock, "y".repeat(100));
    await chat(mock, "z".repeat(100));
    expect(mock.requests.map((r) => (r.json as { filler: string }).filler[0])).toEqual(["y", "z"]);
  });
});
