#!/usr/bin/env node
/**
 * apk-conf-to-kong: turns a WSO2 APK apk-conf file into Kong declarative configuration for the
 * model-based-round-robin plugin, and optionally applies it to a running Kong.
 *
 *   apk-conf-to-kong FILE [-o OUT] [--sandbox-host HOST] [--admin-url URL]
 */
import { readFileSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { applyToKong } from "./converter/apply";
import { APK_DEFAULT_SANDBOX_HOST, convertApkConf } from "./converter/convert";
import { ConversionError } from "./converter/errors";

const USAGE = `usage: apk-conf-to-kong FILE [-o OUT] [--sandbox-host HOST] [--admin-url URL]

Converts a WSO2 APK apk-conf file to Kong declarative configuration (_format_version 3.0) using the
model-based-round-robin plugin. Writes YAML to stdout, or to OUT with -o; warnings go to stderr.
  --sandbox-host HOST  request host that selects the sandbox models (default ${APK_DEFAULT_SANDBOX_HOST})
  --admin-url URL      also apply the result to a running Kong (POST /config when DB-less)`;

async function main(argv: string[]): Promise<number> {
  let args: ReturnType<typeof parse>;
  try {
    args = parse(argv);
  } catch (error) {
    process.stderr.write(`apk-conf-to-kong: ${(error as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (args.values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const file = args.positionals[0];
  if (file === undefined || args.positionals.length > 1) {
    process.stderr.write(`apk-conf-to-kong: expected one apk-conf file\n${USAGE}\n`);
    return 2;
  }
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    process.stderr.write(
      `apk-conf-to-kong: ${file}: cannot read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}\n`,
    );
    return 1;
  }
  const result = convertApkConf(text, {
    fileName: file,
    ...(args.values["sandbox-host"] && { sandboxHost: args.values["sandbox-host"] }),
  });
  for (const warning of result.warnings) process.stderr.write(`warning: ${warning}\n`);
  for (const note of result.notes) process.stderr.write(`note: ${note}\n`);
  for (const s of result.secrets) {
    process.stderr.write(
      `secret: set ${s.envVar} in Kong's environment to key "${s.key}" of Kubernetes secret "${s.secretName}" (referenced as ${s.reference})\n`,
    );
  }
  if (args.values.output) writeFileSync(args.values.output, result.yaml);
  else process.stdout.write(result.yaml);
  if (args.values["admin-url"])
    process.stderr.write(`${await applyToKong(args.values["admin-url"], result.config)}\n`);
  return 0;
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      output: { type: "string", short: "o" },
      "sandbox-host": { type: "string" },
      "admin-url": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    // A ConversionError is the user's message; anything else is a bug, still reported in one line.
    const message =
      error instanceof ConversionError ? error.message : `internal error: ${(error as Error).message}`;
    process.stderr.write(`apk-conf-to-kong: ${message}\n`);
    process.exitCode = 1;
  },
);
