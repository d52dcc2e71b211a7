import { describe, expect, it } from "vitest";
import { maskSecrets, PlainLogger } from "../../pluginserver/logger";

describe("the plugin server's log lines", () => {
  it("mask the entries' keys in StartInstance's Config and the client's credentials in Kong's steps", () => {
    const lines: string[] = [];
    const logger = new PlainLogger("debug", (line) => lines.push(line));
    const config = JSON.stringify({
      production_models: [
        { model: "m", auth_header_name: "api-key", auth_header_value: "Bearer sk-live-123" },
      ],
    });
    logger.debug(
      `rpc: #1 method: plugin.StartInstance args: ${JSON.stringify([{ Name: "p", Config: config }])}`,
    );
    logger.debug(
      `rpc: #2 method: plugin.StepMultiMap args: ${JSON.stringify([
        { EventId: 1, Data: { authorization: ["Bearer client-key"], "X-Api-Key": ["k"], host: ["h.test"] } },
      ])}`,
    );
    const text = lines.join("");
    expect(text).not.toMatch(/sk-live-123|client-key|"k"/);
    expect(text).toContain('\\"auth_header_name\\":\\"api-key\\"');
    expect(text).toContain('"host":["h.test"]');
    expect(text.match(/\*\*\*/g)).toHaveLength(3);
  });

  it("leave everything else as it was", () => {
    const plain = '{"model":"gpt-4o","weight":5,"endpoint":"https://api.test/v1"}';
    expect(maskSecrets(plain)).toBe(plain);
  });
});
