/**
 * Dependencies point one way: tests use tools and the product; tools (scripts/: the converter, the demo, the
 * bench, the mock provider, the Kong double) use the product; the product (plugins/, pluginserver/) uses
 * neither. Checked on the import statements of the source files, so a wrong import fails here before it
 * reaches an image.
 */
import { describe, expect, it } from "vitest";
import { type Import, importsOf, isUnder, sourceFiles } from "./imports";

const root = process.cwd();
const PRODUCT = ["plugins", "pluginserver"];
const importsUnder = (dir: string): Import[] => sourceFiles(root, dir).flatMap((f) => importsOf(root, f));
const show = (list: Import[]) => list.map((i) => `${i.file} imports ${i.specifier}`);

describe("which way the imports point", () => {
  it("reads the imports it checks (the demo imports the Kong double and the mock provider)", () => {
    const targets = importsOf(root, "scripts/demo.ts").map((i) => i.target);
    expect(targets).toContain("scripts/kong-double");
    expect(targets).toContain("scripts/mock-provider");
  });

  it("the product (plugins/, pluginserver/) imports only itself and packages: no scripts/, no spec/", () => {
    const product = PRODUCT.flatMap(importsUnder);
    expect(product.length).toBeGreaterThan(0);
    const outside = product.filter(
      (i) => i.target !== undefined && !PRODUCT.some((d) => isUnder(i.target as string, d)),
    );
    expect(show(outside)).toEqual([]);
  });

  it("tools (scripts/) import no tests (spec/)", () => {
    const intoSpec = importsUnder("scripts").filter(
      (i) => i.target !== undefined && isUnder(i.target, "spec"),
    );
    expect(show(intoSpec)).toEqual([]);
  });

  it("the Kong double's configuration side imports nothing of its runtime side (the runtime reads the config)", () => {
    const intoRuntime = importsUnder("scripts/kong-double/config").filter(
      (i) => i.target !== undefined && isUnder(i.target, "scripts/kong-double/runtime"),
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
