/**
 * WSO2 APK's real files, for cross-checks only. They live outside the repository, in ../shared/apk (next to the
 * repository's root), and are never copied into it: a clone of the project alone passes `npm test`, and each test
 * that reads them is a cross-check that says in its name it is skipped without them (`describe.skipIf(!HAS_APK)`).
 * The converter's own behaviour is tested on the project's own apk-confs, in spec/fixtures/apk-conf.
 *
 * APK_REFERENCE_DIR points the cross-checks elsewhere: `APK_REFERENCE_DIR=/nonexistent npx vitest run` runs the
 * suite as a clone without ../shared does, without moving anything.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { resolve } from "node:path";

/** The repository's root: vitest runs from it. */
const ROOT = process.cwd();
export const APK_DIR = resolve(ROOT, process.env.APK_REFERENCE_DIR || "../shared/apk");
export const HAS_APK = existsSync(APK_DIR);
/** The suffix of every cross-check's name. */
export const SKIPPED_WITHOUT_APK = "(skipped without ../shared/apk)";

/** The names of APK's example files, sorted; none when ../shared/apk is absent. */
export function apkExamples(): string[] {
  return HAS_APK ? readdirSync(resolve(APK_DIR, "examples")).sort() : [];
}

/** The full name of the APK example whose name starts with `prefix` ("01"). */
export function apkExample(prefix: string): string {
  const name = apkExamples().find((e) => e.startsWith(prefix));
  if (name === undefined) throw new Error(`no APK example starting with ${prefix} in ${APK_DIR}/examples`);
  return name;
}

export const readApkExample = (name: string) => readFileSync(resolve(APK_DIR, "examples", name), "utf8");
export const readApkFile = (path: string) => readFileSync(resolve(APK_DIR, path), "utf8");

/** The project's own apk-conf fixtures (spec/fixtures/apk-conf), written for these tests. */
export const OWN_FIXTURES = resolve(ROOT, "spec/fixtures/apk-conf");
export const ownFixturePath = (name: string) => resolve(OWN_FIXTURES, name);
export const readOwnFixture = (name: string) => readFileSync(ownFixturePath(name), "utf8");
