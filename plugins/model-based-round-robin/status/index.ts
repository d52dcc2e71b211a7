/**
 * The opt-in status listener in the plugin server process (GET /status, GET /metrics), at the address in
 * MODEL_BASED_ROUND_ROBIN_STATUS_LISTEN (`host:port`; off when unset or empty).
 *
 * Started once per process, when Kong starts the first plugin instance, never when the module is loaded: the
 * query command (--dump-all-plugins) loads this module too while the real server runs, and must neither take the
 * port nor print anything but its JSON. Every message goes to stderr, which Kong copies into its error log.
 */
import { logToStderr } from "../stderr-log";
import { parseListenAddress, STATUS_LISTEN_ENV } from "./address";

export { STATUS_LISTEN_ENV };

let started = false;

export function startStatusListenerOnce(
  env: Record<string, string | undefined> = process.env,
  log: (message: string) => void = logToStderr,
): void {
  if (started) return;
  started = true;
  const value = env[STATUS_LISTEN_ENV];
  if (value === undefined || value.trim() === "") return;
  const address = parseListenAddress(value);
  if (typeof address === "string") {
    log(
      `${STATUS_LISTEN_ENV}=${JSON.stringify(value.slice(0, 200))}: ${address}; the status listener is off`,
    );
    return;
  }
  try {
    // Required here, not imported above: prom-client is loaded only by a server that serves the listener.
    const { serveStatus } = require("./server") as typeof import("./server");
    serveStatus(address, log);
  } catch (error) {
    log(`status listener: could not start (${String(error)}); the listener is off`);
  }
}
