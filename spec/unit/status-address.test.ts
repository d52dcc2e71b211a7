import { describe, expect, it } from "vitest";
import { parseListenAddress } from "../../plugins/model-based-round-robin/status/address";

describe("MODEL_BASED_ROUND_ROBIN_STATUS_LISTEN", () => {
  it.each([
    ["127.0.0.1:9542", { host: "127.0.0.1", port: 9542 }],
    [" localhost:9542 ", { host: "localhost", port: 9542 }],
    ["[::1]:9542", { host: "::1", port: 9542 }],
    ["0.0.0.0:0", { host: "0.0.0.0", port: 0 }],
  ])("reads %j", (value, address) => {
    expect(parseListenAddress(value)).toEqual(address);
  });

  it.each([
    ["9542", "expected host:port"],
    [":9542", "expected host:port"],
    ["127.0.0.1", "expected host:port"],
    ["127.0.0.1:port", "expected host:port"],
    ["::1:9542", "expected host:port"],
    ["http://127.0.0.1:9542", "expected host:port"],
    ["127.0.0.1:70000", "port 70000 is over 65535"],
  ])("refuses %j, saying what is wrong", (value, problem) => {
    expect(parseListenAddress(value)).toEqual(expect.stringContaining(problem));
  });
});
