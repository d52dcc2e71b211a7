#!/usr/bin/env node
/**
 * Generates kong/kong.yml, the DB-less configuration docker-compose loads, by converting APK's example 01
 * (../shared/apk/examples) with the converter. A test fails when the committed file drifts from this output.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { convertApkConf } from "./converter/convert";

export const EXAMPLE = "01-apk-test-modelroundrobin-api-level-policy-multi-endpoints.apk-conf.yaml";

export function generateKongConfig(repoRoot: string): string {
  const text = readFileSync(resolve(repoRoot, "../shared/apk/examples", EXAMPLE), "utf8");
  return convertApkConf(text, { fileName: EXAMPLE }).yaml;
}

if (require.main === module) {
  const root = resolve(__dirname, "../..");
  writeFileSync(resolve(root, "kong/kong.yml"), generateKongConfig(root));
  process.stderr.write("wrote kong/kong.yml\n");
}
