import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { Schema } from "../../plugins/model-based-round-robin/core/schema";
import { END_MARKER, renderConfigReference, START_MARKER } from "../../scripts/lib/config-reference";

describe("README", () => {
  const readme = readFileSync("README.md", "utf8");

  it("carries the configuration reference generated from the schema (run `npm run docs` after changing it)", () => {
    const start = readme.indexOf(START_MARKER) + START_MARKER.length;
    const end = readme.indexOf(END_MARKER);
    expect(readme.slice(start, end).trim()).toBe(renderConfigReference(Schema).trim());
  });

  it("documents every schema field", () => {
    for (const field of Schema)
      for (const name of Object.keys(field)) expect(readme).toContain(`config.${name}`);
  });

  it("gives the test command", () => {
    expect(readme).toContain("npm test");
  });
});
