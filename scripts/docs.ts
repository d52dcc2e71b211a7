#!/usr/bin/env node
/** Rewrites the README's generated configuration reference from the plugin's schema (`npm run docs`). */
import { readFileSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { Schema } from "../plugins/model-based-round-robin/core/schema";
import { renderConfigReference, replaceSection } from "./lib/config-reference";

const readme = resolve(__dirname, "../../README.md");
writeFileSync(readme, replaceSection(readFileSync(readme, "utf8"), renderConfigReference(Schema)));
process.stderr.write(`updated the configuration reference in ${readme}\n`);
