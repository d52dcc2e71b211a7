/**
 * The plugin server's status listener (GET /status, GET /metrics) has no authentication: the image and the
 * compose file turn it on, on loopback only, at the port the README names.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { STATUS_LISTEN_ENV } from "../../plugins/model-based-round-robin/status/address";
import { envOf, readDockerfile } from "./dockerfile";

const LOOPBACK = "127.0.0.1:9542";

describe(`${STATUS_LISTEN_ENV} in the packaging`, () => {
  it("is set on loopback in the image", () => {
    const dockerfile = readDockerfile(readFileSync("kong/Dockerfile", "utf8"));
    const finalStage = Math.max(...dockerfile.map((i) => i.stage));
    expect(envOf(dockerfile, finalStage)[STATUS_LISTEN_ENV]).toBe(LOOPBACK);
  });

  it("is set on loopback for Kong's container in docker-compose.yml, and published nowhere", () => {
    const compose = parse(readFileSync("docker-compose.yml", "utf8")) as {
      services: Record<string, { ports?: string[]; environment?: Record<string, string> }>;
    };
    expect(compose.services.kong?.environment?.[STATUS_LISTEN_ENV]).toBe(LOOPBACK);
    expect(compose.services.kong?.ports?.some((p) => p.includes("9542"))).toBe(false);
  });

  it("is the address the README gives", () => {
    expect(readFileSync("README.md", "utf8")).toContain(`The image sets \`${LOOPBACK}\``);
  });
});
