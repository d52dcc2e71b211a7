/**
 * The status listener's base URL, read from the line the plugin server logs once it listens (it may listen on
 * port 0): for `npm run chaos` and the tests that talk to the listener.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { KongDouble } from "../../kong-double";

export async function statusListenerUrl(kong: KongDouble, waitMs: number): Promise<string> {
  for (let waited = 0; ; waited += 10) {
    for (const line of kong.logs) {
      const found = /status listener on (http:\/\/\S+):/.exec(line.message);
      if (found?.[1] !== undefined) return found[1];
    }
    if (waited >= waitMs) break;
    await sleep(10);
  }
  throw new Error(`no status listener line in ${JSON.stringify(kong.logs.map((l) => l.message))}`);
}
