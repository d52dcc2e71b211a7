/**
 * Entry module read by Kong's JavaScript plugin server (kong-pdk): it exports the plugin's name, version,
 * priority, configuration schema and handler class. The server derives the phases from the class's methods:
 * `access` and `log` only. There is deliberately no `response` handler: Kong switches every request of a plugin
 * that has one to buffered proxying, which would hold a streamed (SSE) answer until the provider finished.
 */

import { onRejected } from "./core/process-state";
import { EntityChecks, Schema } from "./core/schema";
import { ModelBasedRoundRobinHandler } from "./handler";
import { keepStateIn, STATE_FILE_ENV } from "./persistence";
import { logToStderr } from "./stderr-log";

// State refused as it arrived (from Redis, or rows of the state file): one line a minute at most, on stderr.
onRejected(logToStderr);
// Loaded once per plugin server process: what the previous process learned is taken in before any request.
const stateFile = process.env[STATE_FILE_ENV];
if (stateFile !== undefined && stateFile !== "") {
  // stderr: stdout of the query command must stay pure JSON.
  keepStateIn(stateFile, logToStderr);
}

export const Name = "model-based-round-robin";
export const Version = "0.1.0";
/**
 * 769: after authentication (key-auth 1250, jwt 1450, basic-auth 1100, hmac-auth 1030, ...) so the consumer is
 * known; after acl (950), request-size-limiting (951) and rate-limiting (910), so refused requests never take a
 * turn in the rotation; after request-transformer (801) and the AI prompt plugins (771-777), which rewrite the
 * body before the model is set; just below ai-proxy (770), whose stage it takes.
 */
export const Priority = 769;
/** Read by the project's plugin server only (see pluginserver/server.ts GetPluginInfo). */
export { EntityChecks, Schema };
export const Plugin = ModelBasedRoundRobinHandler;
