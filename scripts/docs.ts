#!/usr/bin/env node
/** Rewrites the generated configuration reference in docs/configuration.md from the plugin's schema (`npm run docs`). */
import { readFileSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { Schema } from "../plugins/model-based-round-robin/core/schema";
import { CONFIG_REFERENCE_FILE, renderConfigReference, replaceSection } from "./lib/config-reference";

const target = resolve(__dirname, "../..", CONFIG_REFERENCE_FILE);
writeFileSync(target, replaceSection(readFileSync(target, "utf8"), renderConfigReference(Schema)));
process.stderr.write(`updated the configuration reference in ${target}\n`);
