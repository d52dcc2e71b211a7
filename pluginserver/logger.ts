/**
 * A plain-text logger with the interface kong-pdk's Server and Listener call (node-color-log's debug, info,
 * warn, error). node-color-log writes ANSI colour codes and cursor moves onto stdout; Kong copies the plugin
 * server's output into error.log verbatim, and the query command's stdout must be pure JSON. So every line goes
 * to stderr, as `<ISO time> [LEVEL] message`, with no escape sequences.
 *
 * With -v kong-pdk logs every RPC with its arguments: StartInstance's Config carries the entries' resolved keys
 * and a Step the client's headers. Secrets are masked in every line (see SECRET_KEYS), so no log line carries
 * a configured key.
 */
import { format } from "node:util";

const LEVELS = ["debug", "info", "warn", "error"] as const;
export type Level = (typeof LEVELS)[number];

/** JSON keys whose values are secrets: the plugin's key field and the headers providers read keys from. */
const SECRET_KEYS = [
  "auth_header_value",
  "authorization",
  "proxy-authorization",
  "api-key",
  "x-api-key",
  "cookie",
];
/**
 * `"key":"value"` or `"key":["value"]`, also inside a JSON string that holds JSON (StartInstance's Config),
 * where the quotes arrive escaped.
 */
const SECRET_VALUE = new RegExp(
  `((?:${SECRET_KEYS.join("|")})\\\\*"\\s*:\\s*\\[?\\s*\\\\*")((?:[^"\\\\]|\\\\(?!\\\\*"))*)`,
  "gi",
);

export function maskSecrets(text: string): string {
  return text.replace(SECRET_VALUE, "$1***");
}

export class PlainLogger {
  private threshold: number;

  constructor(
    level: Level = "info",
    private readonly write: (line: string) => void = (line) => process.stderr.write(line),
  ) {
    this.threshold = LEVELS.indexOf(level);
  }

  setLevel(level: Level): void {
    this.threshold = LEVELS.indexOf(level);
  }

  debug(...args: unknown[]): void {
    this.emit("debug", args);
  }

  info(...args: unknown[]): void {
    this.emit("info", args);
  }

  warn(...args: unknown[]): void {
    this.emit("warn", args);
  }

  error(...args: unknown[]): void {
    this.emit("error", args);
  }

  private emit(level: Level, args: unknown[]): void {
    if (LEVELS.indexOf(level) < this.threshold) return;
    // A message is one line: an embedded newline (a stack trace) would split it across log entries, and any
    // control character (ESC included) is escaped so a plugin's own text cannot colour Kong's error.log.
    const text = maskSecrets(
      args
        .map((a) =>
          typeof a === "string" ? a : a instanceof Error ? (a.stack ?? String(a)) : format("%j", a),
        )
        .join(" ")
        .replace(/\r?\n/g, " | ")
        // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this removes
        .replace(/[\u0000-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`),
    );
    this.write(`${new Date().toISOString()} [${level.toUpperCase()}] ${text}\n`);
  }
}
