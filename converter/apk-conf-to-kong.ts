#!/usr/bin/env node
/**
 * apk-conf-to-kong: turns WSO2 APK apk-conf files into one Kong declarative configuration for the
 * model-based-round-robin plugin, and optionally applies it to a running Kong.
 *
 *   apk-conf-to-kong FILE|DIR... [-o OUT] [--auth key-auth|jwt|none] [--redis-host HOST [--redis-port PORT]]
 *                    [--sandbox-host HOST] [--env-host ENV=HOST]... [--env-sandbox-host ENV=HOST]...
 *                    [--admin-url URL [--replace]]
 */
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { applyToKong } from "./apply";
import {
  APK_DEFAULT_SANDBOX_HOST,
  type ApiConversion,
  AUTH_PLUGINS,
  type AuthPlugin,
  apkHosts,
  type ConvertOptions,
  convertApi,
  render,
} from "./convert";
import { ConversionError, NotAnApkConf } from "./errors";

const USAGE = `usage: apk-conf-to-kong FILE|DIR... [-o OUT] [--auth key-auth|jwt|none]
                        [--redis-host HOST [--redis-port PORT]] [--sandbox-host HOST] [--env-host ENV=HOST]...
                        [--env-sandbox-host ENV=HOST]... [--admin-url URL [--replace]]

Converts WSO2 APK apk-conf files (APK 1.2 and later) to one Kong declarative configuration (_format_version 3.0)
using the model-based-round-robin plugin. A directory stands for its *.apk-conf, *.yaml and *.yml files (files
in it that are not apk-confs are skipped with a warning). Writes YAML to stdout, or to OUT with -o; warnings,
notes and the secrets to set go to stderr. Every error of every file is reported (exit 1, no output).
  --auth PLUGIN                what secured operations (APK's default) get: key-auth (the default), jwt, or
                               none (they are OPEN on Kong: a warning says so)
  --redis-host HOST            rate-limiting (from APK's rateLimit) counts in this Redis, shared by every Kong
                               node (policy redis); without it each node counts alone (policy local)
  --redis-port PORT            its port (default 6379)
  --sandbox-host HOST          request host that selects sandbox for APIs without an environment
                               (default ${APK_DEFAULT_SANDBOX_HOST})
  --env-host ENV=HOST          host of the APIs of environment ENV (default ${apkHosts("ENV").production})
  --env-sandbox-host ENV=HOST  their sandbox host (default ${apkHosts("ENV").sandbox})
  --admin-url URL              also apply the result to a running Kong: merged into what a DB-less Kong holds
                               (GET /config, then POST /config), through the entity endpoints otherwise
  --replace                    with --admin-url on a DB-less Kong: replace all it holds with this run's APIs`;

/** A user's mistake in the arguments: the message, then the usage, exit 2. */
class UsageError extends Error {}

async function main(argv: string[]): Promise<number> {
  let args: ReturnType<typeof parse>;
  let options: ConvertOptions & { environmentHosts: NonNullable<ConvertOptions["environmentHosts"]> };
  try {
    args = parse(argv);
    if (args.values.help) {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    if (args.positionals.length === 0) throw new UsageError("expected apk-conf files or directories");
    if (args.values.replace && !args.values["admin-url"]) throw new UsageError("--replace needs --admin-url");
    options = { fileName: "", environmentHosts: {} };
    const auth = args.values.auth ?? "key-auth";
    if (!AUTH_PLUGINS.includes(auth as AuthPlugin))
      throw new UsageError(`--auth ${auth}: expected one of ${AUTH_PLUGINS.join(", ")}`);
    options.auth = auth as AuthPlugin;
    const redisPort = args.values["redis-port"];
    if (redisPort !== undefined && !args.values["redis-host"])
      throw new UsageError("--redis-port needs --redis-host");
    if (redisPort !== undefined && !/^\d+$/.test(redisPort))
      throw new UsageError(`--redis-port ${redisPort}: expected a port number`);
    if (redisPort !== undefined && (Number(redisPort) < 1 || Number(redisPort) > 65535))
      throw new UsageError(`--redis-port ${redisPort}: expected a port from 1 to 65535`);
    const redisHost = args.values["redis-host"];
    if (redisHost !== undefined) {
      if (!/^[A-Za-z0-9._-]+$|^\[[0-9A-Fa-f:.]+\]$/.test(redisHost))
        throw new UsageError(
          `--redis-host ${redisHost}: expected a host name or IP address, without a scheme or port`,
        );
      options.redis = { host: redisHost, ...(redisPort !== undefined && { port: Number(redisPort) }) };
    }
    if (args.values["sandbox-host"]) options.sandboxHost = args.values["sandbox-host"];
    for (const [flag, kind] of [
      ["env-host", "production"],
      ["env-sandbox-host", "sandbox"],
    ] as const) {
      for (const value of args.values[flag] ?? []) {
        const m = /^([^=]+)=(.+)$/.exec(value);
        if (m === null) throw new UsageError(`--${flag} ${value}: expected ENV=HOST`);
        const [, env, host] = m as unknown as [string, string, string];
        options.environmentHosts[env] = { ...options.environmentHosts[env], [kind]: host };
      }
    }
  } catch (error) {
    process.stderr.write(`apk-conf-to-kong: ${(error as Error).message}\n${USAGE}\n`);
    return 2;
  }

  const warnings: string[] = [];
  const apis: ApiConversion[] = [];
  // Every file is read, so that one run reports the errors of all of them.
  const errors: string[] = [];
  for (const input of inputs(args.positionals, warnings)) {
    try {
      apis.push(convertApi(readFileSync(input.path, "utf8"), { ...options, fileName: input.path }));
    } catch (error) {
      if (input.inDirectory && error instanceof NotAnApkConf)
        warnings.push(`skipped ${(error as Error).message}`);
      else if (error instanceof ConversionError) errors.push(error.message);
      else throw error;
    }
  }
  if (errors.length > 0) {
    for (const warning of warnings) process.stderr.write(`warning: ${warning}\n`);
    throw new ConversionError(errors.join("\n"));
  }
  if (apis.length === 0)
    throw new ConversionError(`${args.positionals.join(", ")}: no apk-conf among the files given`);
  const used = new Set(apis.map((a) => a.environment).filter((e) => e !== undefined));
  for (const env of Object.keys(options.environmentHosts))
    if (!used.has(env)) warnings.push(`--env-host/--env-sandbox-host ${env}: no API of environment ${env}`);
  const result = render(apis);
  for (const warning of [...warnings, ...result.warnings]) process.stderr.write(`warning: ${warning}\n`);
  for (const note of result.notes) process.stderr.write(`note: ${note}\n`);
  for (const s of result.secrets) {
    process.stderr.write(
      `secret: set ${s.envVar} in Kong's environment to key "${s.key}" of Kubernetes secret "${s.secretName}" (referenced as ${s.reference})\n`,
    );
  }
  const output = args.values.output;
  if (output) {
    try {
      writeFileSync(output, result.yaml);
    } catch (error) {
      throw new ConversionError(`${output}: cannot write: ${errorCode(error)}`);
    }
  } else process.stdout.write(result.yaml);
  if (args.values["admin-url"]) {
    const replace = args.values.replace === true;
    process.stderr.write(`${await applyToKong(args.values["admin-url"], result.config, { replace })}\n`);
  }
  return 0;
}

/** The files to convert: each FILE, and the *.apk-conf, *.yaml, *.yml files of each DIR, sorted. */
function inputs(paths: string[], warnings: string[]): { path: string; inDirectory: boolean }[] {
  return paths.flatMap((path): { path: string; inDirectory: boolean }[] => {
    let isDirectory: boolean;
    try {
      isDirectory = statSync(path).isDirectory();
    } catch (error) {
      throw new ConversionError(`${path}: cannot read: ${errorCode(error)}`);
    }
    if (!isDirectory) return [{ path, inDirectory: false }];
    let names: string[];
    try {
      names = readdirSync(path).sort();
    } catch (error) {
      throw new ConversionError(`${path}: cannot read: ${errorCode(error)}`);
    }
    const files = names
      .filter((n) => /\.(apk-conf|ya?ml)$/i.test(n))
      .map((n) => join(path, n))
      .filter((p) => statSync(p).isFile());
    if (files.length === 0)
      throw new ConversionError(`${path}: a directory without *.apk-conf, *.yaml or *.yml files`);
    const others = names.filter((n) => !/\.(apk-conf|ya?ml)$/i.test(n));
    if (others.length > 0)
      warnings.push(`${path}: not read (not *.apk-conf, *.yaml, *.yml): ${others.join(", ")}`);
    return files.map((p) => ({ path: p, inDirectory: true }));
  });
}

function errorCode(error: unknown): string {
  return (error as NodeJS.ErrnoException).code ?? (error as Error).message;
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      output: { type: "string", short: "o" },
      auth: { type: "string" },
      "redis-host": { type: "string" },
      "redis-port": { type: "string" },
      "sandbox-host": { type: "string" },
      "env-host": { type: "string", multiple: true },
      "env-sandbox-host": { type: "string", multiple: true },
      "admin-url": { type: "string" },
      replace: { type: "boolean" },
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
    // One line per problem (a file with several errors, several files with errors).
    const message =
      error instanceof ConversionError ? error.message : `internal error: ${(error as Error).message}`;
    for (const line of message.split("\n")) process.stderr.write(`apk-conf-to-kong: ${line}\n`);
    process.exitCode = 1;
  },
);
