/** Static import reading for the layering checks: every module specifier a TypeScript file names. */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, normalize, relative } from "node:path";

export interface Import {
  /** The importing file, relative to the repository root, with forward slashes. */
  file: string;
  specifier: string;
  /** For a relative specifier: the imported path relative to the repository root; otherwise undefined. */
  target?: string;
}

const SPECIFIERS = [
  /\b(?:import|export)\s+(?:type\s+)?[^'";]*?\bfrom\s*["']([^"']+)["']/g,
  /\bimport\s*["']([^"']+)["']/g,
  /\bimport\(\s*["']([^"']+)["']\s*\)/g,
  /\brequire\(\s*["']([^"']+)["']\s*\)/g,
];

/** The .ts/.mts files under `dir` (relative to `root`), recursively; none when it does not exist. */
export function sourceFiles(root: string, dir: string): string[] {
  let entries: { name: string; isDirectory(): boolean }[];
  try {
    entries = readdirSync(join(root, dir), { withFileTypes: true });
  } catch {
    return [];
  }
  return entries.flatMap((e) => {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory()) return e.name === "node_modules" ? [] : sourceFiles(root, path);
    return /\.m?ts$/.test(e.name) ? [path] : [];
  });
}

export function importsOf(root: string, file: string): Import[] {
  const text = readFileSync(join(root, file), "utf8");
  const out: Import[] = [];
  for (const pattern of SPECIFIERS) {
    for (const m of text.matchAll(pattern)) {
      const specifier = m[1] as string;
      const target = specifier.startsWith(".")
        ? relative(root, normalize(join(root, dirname(file), specifier))).replaceAll("\\", "/")
        : undefined;
      out.push({ file, specifier, ...(target !== undefined && { target }) });
    }
  }
  return out;
}

/** True when `path` (repository-relative) is `dir` or inside it. */
export const isUnder = (path: string, dir: string): boolean => path === dir || path.startsWith(`${dir}/`);
