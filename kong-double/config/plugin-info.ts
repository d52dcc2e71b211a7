/**
 * Kong's load checks on a plugin server's query command (3.9.3: kong/runloop/plugin_servers/process.lua
 * query_external_plugin_info and init.lua; kong/db/dao/plugins.lua load_plugin_handler; kong/db/schema/
 * plugin_loader.lua load_subschema; 3.8.0: process.lua ask_info):
 *
 * - stdout only (io.popen), decoded with cjson: anything but JSON fails ("failed decoding plugin info: ...");
 *   a JSON value that is not a table fails ("not a plugin info table"; 3.8: "Not a plugin info table").
 * - an array, or `{Protocol, Plugins}`; the protocol defaults to "MsgPack:1".
 * - 3.9 registers only the first entry of each server (`(dump.Plugins or dump)[1]`), and an empty list fails
 *   when Kong indexes the missing entry; 3.8 registers every entry, a later duplicate name is logged and
 *   skipped.
 * - then, per plugin, as `load_plugin_schemas` does: no `Priority` → "plugin is enabled but not installed";
 *   a non-integer one → "PRIORITY field is not a valid integer number"; `Version` must parse as at most three
 *   dot-separated numbers (Kong's `version` library grabs the first run of digits and dots, so "1.2", "v1.2.3"
 *   and "1.2.3-beta" pass, "1.2.3.4" and "abc" do not) → "VERSION field does not follow the "x.y.z" format";
 *   the schema must pass the metaschema (./metaschema). Kong formats these as
 *   "error loading plugin schemas: on plugin '<name>': <reason>" and refuses to start.
 *
 * The double checks every plugin it is given, as if all were listed in `plugins = bundled,...`.
 */
import { execFile } from "node:child_process";
import { schemaViolation } from "./kong-errors";
import { checkPluginSchema, type MetaschemaProblem } from "./metaschema";
import type { Phase, PluginInfo, SchemaField } from "./model";
import { isPlainObject } from "./schema";

export type KongVersion = "3.9" | "3.8";

export interface QueryOptions {
  kongVersion: KongVersion;
  /** The plugin server's name (pluginserver_names entry). */
  server: string;
  /** How long the query command may run; Kong itself waits forever. Default 30 s. */
  timeoutMs?: number;
}

export class PluginLoadError extends Error {
  override name = "PluginLoadError";
  constructor(
    message: string,
    /** Metaschema problems with the path of the offending field, when the schema was the reason. */
    readonly problems: MetaschemaProblem[] = [],
  ) {
    super(message);
  }
}

const PHASES: readonly Phase[] = ["certificate", "rewrite", "access", "response", "preread", "log"];
const SUPPORTED_PROTOCOL = "MsgPack:1";

/** Runs a query command as Kong does (stdout only) and applies Kong's load checks to what it prints. */
export function runQueryCommand(argv: string[], opts: QueryOptions): Promise<PluginInfo[]> {
  const [command, ...args] = argv;
  const shown = argv.join(" ");
  if (command === undefined || command === "") {
    return Promise.reject(new PluginLoadError(`query_command undefined for pluginserver ${opts.server}`));
  }
  const timeout = opts.timeoutMs ?? 30_000;
  return new Promise((resolve, reject) => {
    execFile(
      command,
      args,
      { timeout, killSignal: "SIGKILL", maxBuffer: 64 * 1024 * 1024, encoding: "utf8" },
      (error, stdout) => {
        if (error && (error as { killed?: boolean }).killed) {
          reject(
            new PluginLoadError(
              `query command of pluginserver '${opts.server}' (${shown}) did not finish within ${timeout} ms`,
            ),
          );
          return;
        }
        if (error && typeof error.code === "string") {
          reject(
            new PluginLoadError(
              `query command of pluginserver '${opts.server}' (${shown}) could not run: ${error.message}`,
            ),
          );
          return;
        }
        try {
          resolve(parsePluginDump(stdout, opts));
        } catch (e) {
          if (e instanceof PluginLoadError) {
            const status = error ? ` (it exited with status ${error.code})` : "";
            e.message = `${e.message}\n  query command: ${shown}${status}`;
          }
          reject(e);
        }
      },
    );
  });
}

/** Kong's checks on a query command's stdout; returns the plugins Kong would register. */
export function parsePluginDump(
  stdout: string,
  opts: { kongVersion: KongVersion; server: string },
): PluginInfo[] {
  const where = `pluginserver '${opts.server}'`;
  let dump: unknown;
  try {
    dump = JSON.parse(stdout);
  } catch (e) {
    throw new PluginLoadError(
      `failed loading external plugins: failed decoding plugin info: ${cjsonDecodeError(stdout, e as Error)} (${where}: its query command must print nothing but the JSON plugin info on stdout)`,
    );
  }
  if (dump === null || typeof dump !== "object") {
    const notTable = opts.kongVersion === "3.8" ? "Not a plugin info table" : "not a plugin info table";
    throw new PluginLoadError(`failed loading external plugins: ${notTable}: \n${where}\n${stdout}`);
  }
  const protocol =
    (isPlainObject(dump) && typeof dump.Protocol === "string" && dump.Protocol) || SUPPORTED_PROTOCOL;
  if (protocol !== SUPPORTED_PROTOCOL) {
    throw new PluginLoadError(
      `${where} speaks ${protocol}; the double implements ${SUPPORTED_PROTOCOL} only`,
    );
  }
  const list = isPlainObject(dump) && dump.Plugins !== undefined ? dump.Plugins : dump;
  const entries = Array.isArray(list) ? list : [];
  if (opts.kongVersion === "3.9") {
    const first = entries[0];
    if (!isPlainObject(first)) {
      throw new PluginLoadError(
        `failed loading external plugins: attempt to index local 'info' (a nil value) (${where} reported no plugin: Kong 3.9 takes the first entry of its list)`,
      );
    }
    return [checkPluginInfo(first, opts.server)];
  }
  const seen = new Set<string>();
  const plugins: PluginInfo[] = [];
  for (const entry of entries) {
    if (!isPlainObject(entry)) continue;
    if (typeof entry.Name === "string" && seen.has(entry.Name)) continue; // Kong logs "Duplicate plugin name" and skips it
    if (typeof entry.Name === "string") seen.add(entry.Name);
    plugins.push(checkPluginInfo(entry, opts.server));
  }
  return plugins;
}

/** What lua-cjson says for the usual ways a dump is broken (its byte positions are 1-based). */
function cjsonDecodeError(text: string, error: Error): string {
  const first = text.search(/\S/);
  if (first === -1) return `Expected value but found T_END at character ${Buffer.byteLength(text) + 1}`;
  if (!/["[{\-0-9tfn]/.test(text.charAt(first)))
    return `Expected value but found invalid token at character ${first + 1}`;
  return error.message;
}

function loadError(name: string, reason: string, problems: MetaschemaProblem[] = []): PluginLoadError {
  const detail = problems.map((p) => `\n  ${p.path}: ${p.rule}`).join("");
  return new PluginLoadError(
    `error loading plugin schemas: on plugin '${name}': ${reason}${detail}`,
    problems,
  );
}

function checkPluginInfo(info: Record<string, unknown>, server: string): PluginInfo {
  const name = info.Name;
  if (typeof name !== "string" || name === "") {
    throw new PluginLoadError(
      `failed loading external plugins: plugin info from pluginserver '${server}' has no Name`,
    );
  }
  const priority = info.Priority;
  if (priority === undefined || priority === null) {
    throw loadError(name, `${name} plugin is enabled but not installed;\nno plugin found`);
  }
  if (typeof priority !== "number" || !Number.isInteger(priority)) {
    throw loadError(
      name,
      `Plugin "${name}" cannot be loaded because its PRIORITY field is not a valid integer number, got: "${luaToString(priority)}".\n`,
    );
  }
  const version = cleanVersion(info.Version);
  if (version === undefined) {
    throw loadError(
      name,
      `Plugin "${name}" cannot be loaded because its VERSION field does not follow the "x.y.z" format, got: "${luaToString(info.Version)}".\n`,
    );
  }
  if (!Array.isArray(info.Phases) || info.Phases.some((p) => typeof p !== "string")) {
    throw loadError(
      name,
      `Phases must be an array of phase names, got: ${JSON.stringify(info.Phases ?? null)}`,
    );
  }
  const schema = info.Schema;
  if (!isPlainObject(schema)) throw loadError(name, `no configuration schema found for plugin: ${name}`);
  const { errors, problems } = checkPluginSchema(schema);
  if (Object.keys(errors).length > 0)
    throw loadError(name, schemaViolation(errors).message as string, problems);
  const config = (schema.fields as SchemaField[]).find((f) => "config" in f)?.config;
  for (const field of schema.fields as SchemaField[]) {
    const [fieldName, def] = Object.entries(field)[0] as [string, { type: string }];
    if (!["config", "protocols", "consumer", "route", "service"].includes(fieldName)) {
      throw loadError(
        name,
        `error initializing schema for plugin: error in definition of '${name}': ${fieldName}: cannot create a new field`,
      );
    }
    if (fieldName === "config" && def.type !== "record" && def.type !== "json") {
      throw loadError(
        name,
        `error initializing schema for plugin: error in definition of '${name}': config: cannot change type in a specialized field`,
      );
    }
  }
  const checksOf = (v: unknown) =>
    Array.isArray(v) && v.length > 0 ? (v as Record<string, unknown>[]) : undefined;
  const entityChecks = checksOf(schema.entity_checks);
  const configEntityChecks = checksOf(config?.entity_checks);
  return {
    name,
    version,
    priority,
    phases: (info.Phases as string[]).filter((p): p is Phase => (PHASES as string[]).includes(p)),
    configFields: config?.fields ?? [],
    ...(entityChecks && { entityChecks }),
    ...(configEntityChecks && { configEntityChecks }),
    server,
  };
}

/** kong/db/dao/plugins.lua valid_version with the `version` library: the cleaned "x.y.z" or undefined. */
function cleanVersion(v: unknown): string | undefined {
  if (typeof v !== "string") return undefined;
  const run = /[\d.]+/.exec(v)?.[0];
  if (run === undefined) return undefined;
  const parts = run.split(".").filter((p) => p !== "");
  if (parts.length === 0 || parts.length > 3) return undefined;
  return parts.map((p) => String(Number(p))).join(".");
}

function luaToString(v: unknown): string {
  if (v === undefined || v === null) return "nil";
  if (typeof v === "object") return "table: 0x…";
  return String(v);
}
