#!/usr/bin/env node
/**
 * Generates kong/kong.yml, the DB-less configuration docker-compose loads, by converting APK's example 01 with the
 * converter. APK's files are not part of this repository: they are read from ../shared/apk (next to the repository's
 * root), a checkout of WSO2 APK's examples. A cross-check test, skipped without ../shared/apk, fails when the
 * committed file drifts from this output.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { convertApkConf } from "./converter/convert";

export const EXAMPLE = "01-apk-test-modelroundrobin-api-level-policy-multi-endpoints.apk-conf.yaml";

export function generateKongConfig(repoRoot: string): string {
  const file = resolve(repoRoot, "../shared/apk/examples", EXAMPLE);
  if (!existsSync(file)) {
    throw new Error(
      `${file} does not exist: kong/kong.yml is generated from WSO2 APK's example ${EXAMPLE}, which is not part of this repository; put APK's examples in ../shared/apk/examples (next to the repository) and run again`,
    );
  }
  return convertApkConf(readFileSync(file, "utf8"), { fileName: EXAMPLE }).yaml;
}

if (require.main === module) {
  const root = resolve(__dirname, "../..");
  try {
    writeFileSync(resolve(root, "kong/kong.yml"), generateKongConfig(root));
  } catch (error) {
    process.stderr.write(`generate-kong-config: ${(error as Error).message}\n`);
    process.exit(1);
  }
  process.stderr.write("wrote kong/kong.yml\n");
}
