import { describe, expect, it } from "vitest";
import {
  imageSettings,
  kongEnvironment,
  queryArgv,
  socketPath,
  startArgv,
} from "../../kong-double/pluginserver-settings";

describe("plugin server settings", () => {
  const s = imageSettings(process.cwd());

  it("puts the socket Kong connects to where the JS server listens (prefix + sock name)", () => {
    const env = kongEnvironment(s);
    expect(env.KONG_PLUGINSERVER_MODEL_BASED_ROUND_ROBIN_SOCKET).toBe(socketPath(s));
    expect(startArgv(s)).toEqual(
      expect.arrayContaining(["--kong-prefix", s.kongPrefix, "--sock-name", s.sockName]),
    );
  });

  it("uses absolute commands, because Kong runs them with a limited PATH", () => {
    expect(startArgv(s)[0]).toMatch(/^\//);
    expect(queryArgv(s)[0]).toMatch(/^\//);
    expect(queryArgv(s)).toContain("--dump-all-plugins");
  });
});
