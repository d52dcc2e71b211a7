/** The relay's tickets: what access hands the relay, taken out once, by the holder of the whole ticket only. */
import { describe, expect, it } from "vitest";
import { issueTicket, pendingTickets, takeTicket } from "../../plugins/model-based-round-robin/relay/tickets";

const decision = {
  pluginId: "p",
  env: "production" as const,
  entryKey: "http://a.test:80#m",
  servicePath: "/v1",
  connectTimeoutMs: 60_000,
  readTimeoutMs: 60_000,
};

describe("relay tickets", () => {
  it("give the decision back once, and never again", () => {
    const ticket = issueTicket(decision);
    expect(takeTicket(ticket)).toEqual(decision);
    expect(takeTicket(ticket)).toBeUndefined();
  });

  it("give nothing for a forged secret, a missing one, junk or no header, and keep the real ticket usable", () => {
    const ticket = issueTicket(decision);
    const [id] = ticket.split(".");
    for (const forged of [
      `${id}.AAAAAAAAAAAAAAAAAAAAAA`,
      `${id}.`,
      `${id}`,
      "junk",
      "",
      undefined,
      [ticket],
    ]) {
      expect(takeTicket(forged)).toBeUndefined();
    }
    expect(takeTicket(ticket)).toEqual(decision);
  });

  it("expire: a ticket Kong never forwarded is no good ten minutes later", () => {
    const now = Date.now();
    const ticket = issueTicket(decision, now);
    expect(takeTicket(ticket, now + 11 * 60 * 1000)).toBeUndefined();
  });

  it("stay bounded when Kong forwards none of them", () => {
    const before = pendingTickets();
    for (let i = 0; i < 120_000; i++) issueTicket(decision);
    expect(pendingTickets()).toBeLessThanOrEqual(100_000);
    expect(pendingTickets()).toBeGreaterThan(before);
  });
});
