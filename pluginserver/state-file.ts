/**
 * Where the plugin keeps what it learned across restarts of this server (the plugin's persistence.ts reads the
 * same variable): beside the socket in Kong's prefix, unless the environment says otherwise ("" turns it off).
 * The plugin takes it in when it is loaded, so the server sets it before it loads the plugins.
 */
import { basename, join } from "node:path";

export { STATE_FILE_ENV } from "./settings";

export function stateFileFor(opts: { kongPrefix: string; sockName: string }): string {
  return join(opts.kongPrefix, `${basename(opts.sockName, ".sock")}.state.json`);
}
