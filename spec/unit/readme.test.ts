/**
 * The documentation by reader: the README for users (the two commands), docs/configuration.md with the reference
 * generated from the schema, and every field explained somewhere in the prose, not only in that table.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Schema, type SchemaField } from "../../plugins/model-based-round-robin/core/schema";
import {
  CONFIG_REFERENCE_FILE,
  END_MARKER,
  nestedFields,
  renderConfigReference,
  START_MARKER,
} from "../../scripts/lib/config-reference";

const readme = readFileSync("README.md", "utf8");
const reference = readFileSync(CONFIG_REFERENCE_FILE, "utf8");

/** Every document of the README and docs/, with the generated section cut out. */
function prose(): string {
  const files = ["README.md", ...readdirSync("docs").map((f) => join("docs", f))].filter((f) =>
    f.endsWith(".md"),
  );
  return files
    .map((f) => {
      const text = readFileSync(f, "utf8");
      const start = text.indexOf(START_MARKER);
      return start === -1 ? text : text.slice(0, start) + text.slice(text.indexOf(END_MARKER));
    })
    .join("\n");
}

function fieldNames(fields: readonly SchemaField[]): string[] {
  return fields.flatMap((field) =>
    Object.entries(field).flatMap(([name, def]) => {
      const nested = nestedFields(def);
      return [name, ...(nested === undefined ? [] : fieldNames(nested))];
    }),
  );
}

describe("the documentation", () => {
  it(`carries the configuration reference generated from the schema in ${CONFIG_REFERENCE_FILE} (run \`npm run docs\` after changing it)`, () => {
    const start = reference.indexOf(START_MARKER) + START_MARKER.length;
    const end = reference.indexOf(END_MARKER);
    expect(start).toBeGreaterThan(START_MARKER.length - 1);
    expect(reference.slice(start, end).trim()).toBe(renderConfigReference(Schema).trim());
  });

  it("documents every schema field: in the reference, and by name in the prose of the README or docs/", () => {
    for (const field of Schema)
      for (const name of Object.keys(field)) expect(reference).toContain(`config.${name}`);
    const text = prose();
    const unexplained = [...new Set(fieldNames(Schema))].filter(
      (name) => !new RegExp(`\`[^\`\\n]*\\b${name}\\b[^\`\\n]*\``).test(text),
    );
    expect(unexplained).toEqual([]);
  });

  it("gives the two commands, and links the configuration reference", () => {
    expect(readme).toContain("npm test");
    expect(readme).toContain("npm start");
    expect(readme).toContain("npm start -- --help");
    expect(readme).toContain(`](${CONFIG_REFERENCE_FILE})`);
  });

  it("links only documents that exist, or that the issue 22 helpers add", () => {
    const pending = new Set(["plugin-server.md", "kong-notes.md", "converter.md", "trust-and-state.md"]);
    const docs = new Set(readdirSync("docs"));
    for (const [, target] of readme.matchAll(/\]\(docs\/([^)#]+)/g))
      expect({ target, exists: docs.has(target as string) || pending.has(target as string) }).toEqual({
        target,
        exists: true,
      });
  });
});
