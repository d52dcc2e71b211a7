/**
 * Dependencies point one way. The product is the plugin (plugins/) with its plugin server (pluginserver/), and
 * the converter (converter/), which may read the plugin's core facts but nothing else of the repository. The
 * Kong test double (kong-double/) is a tool of its own: it talks to the product only through Kong's protocol
 * and imports none of it. Developer commands (scripts/) use all of these; tests (spec/) use everything, and
 * nothing imports a test. Checked on the import statements of the source files, so a wrong import fails here
 * before it reaches an image.
 */
import { describe, expect, it } from "vitest";
import { type Import, importsOf, isUnder, sourceFiles } from "./imports";

const root = process.cwd();
const PRODUCT = ["plugins", "pluginserver"];
const importsUnder = (dir: string): Import[] => sourceFiles(root, dir).flatMap((f) => importsOf(root, f));
const show = (list: Import[]) => list.map((i) => `${i.file} imports ${i.specifier}`);
/** Relative imports of the files under `dir` that leave every one of the `allowed` directories. */
const leaving = (dir: string, allowed: string[]): string[] =>
  show(
    importsUnder(dir).filter(
      (i) => i.target !== undefined && !allowed.some((d) => isUnder(i.target as string, d)),
    ),
  );

describe("which way the imports point", () => {
  it("reads the imports it checks (the demo imports the Kong double and the mock provider)", () => {
    const targets = importsOf(root, "scripts/demo.ts").map((i) => i.target);
    expect(targets).toContain("kong-double");
    expect(targets).toContain("scripts/mock-provider");
  });

  it("the plugin and its server (plugins/, pluginserver/) import only themselves and packages", () => {
    expect(PRODUCT.flatMap(importsUnder).length).toBeGreaterThan(0);
    expect(PRODUCT.flatMap((dir) => leaving(dir, PRODUCT))).toEqual([]);
  });

  it("the converter imports only itself and the plugin (its core facts): no double, no scripts, no tests", () => {
    expect(importsUnder("converter").length).toBeGreaterThan(0);
    expect(leaving("converter", ["converter", "plugins"])).toEqual([]);
  });

  it("the Kong double imports only itself: it meets the product through Kong's protocol alone", () => {
    expect(leaving("kong-double", ["kong-double"])).toEqual([]);
  });

  it("developer commands (scripts/) import no tests (spec/)", () => {
    const intoSpec = importsUnder("scripts").filter(
      (i) => i.target !== undefined && isUnder(i.target, "spec"),
    );
    expect(show(intoSpec)).toEqual([]);
  });

  it("the Kong double's configuration side imports nothing of its runtime side (the runtime reads the config)", () => {
    const intoRuntime = importsUnder("kong-double/config").filter(
      (i) => i.target !== undefined && isUnder(i.target, "kong-double/runtime"),
    );
    expect(show(intoRuntime)).toEqual([]);
  });

  it("the mock provider imports only Node's modules and its own files (its image ships nothing else)", () => {
    const other = importsUnder("scripts/mock-provider").filter((i) =>
      i.target === undefined ? !i.specifier.startsWith("node:") : !isUnder(i.target, "scripts/mock-provider"),
    );
    expect(show(other)).toEqual([]);
  });
});
