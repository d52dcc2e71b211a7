/**
 * Keeps what the plugin learned across restarts of its plugin server (a crash, or `kong reload`, which starts a
 * fresh server): suspensions, billing benches, probe suspects, failure streaks and rotation positions, in one
 * small JSON file. The file is written after the response, never on the request path: soon after a change
 * worth keeping, and once a second while rotation positions move; read once when the plugin is loaded.
 *
 * The file is named by MODEL_BASED_ROUND_ROBIN_STATE_FILE, which the project's plugin server sets to a file in
 * Kong's prefix; unset (for example under the stock kong-js-pluginserver), nothing is kept.
 */
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { rename, writeFile } from "node:fs/promises";
import { exportState, importState, onStateChange, stateRevision } from "./core/process-state";

export const STATE_FILE_ENV = "MODEL_BASED_ROUND_ROBIN_STATE_FILE";
/** Rotation positions move on every pick: written at most this often. */
const POSITIONS_EVERY_MS = 1000;
/** A change worth keeping (a suspension) is written this soon, coalescing the ones that come together. */
const CHANGE_DELAY_MS = 20;

export interface Persistence {
  /** Writes now if anything changed since the last write. */
  flush(): Promise<void>;
  stop(): void;
}

export function keepStateIn(path: string, log: (message: string) => void = () => {}): Persistence {
  restore(path, log);
  // Only a process that changed something writes: the query command loads the plugin too, and must never
  // overwrite the running server's file with what it read.
  let written = stateRevision();
  // Written beside the file, then renamed over it: a reader never sees half a snapshot.
  const temporary = `${path}.${process.pid}.tmp`;
  let writing: Promise<void> | undefined;
  let soon: NodeJS.Timeout | undefined;

  const write = async (): Promise<void> => {
    if (writing !== undefined) await writing;
    const revision = stateRevision();
    if (revision === written) return;
    writing = writeFile(temporary, JSON.stringify(exportState()))
      .then(() => rename(temporary, path))
      .then(
        () => {
          written = revision;
        },
        (error: unknown) => log(`could not keep state in ${path}: ${String(error)}`),
      )
      .finally(() => {
        writing = undefined;
      });
    await writing;
  };

  onStateChange(() => {
    soon ??= setTimeout(() => {
      soon = undefined;
      void write();
    }, CHANGE_DELAY_MS).unref();
  });
  const every = setInterval(() => void write(), POSITIONS_EVERY_MS).unref();
  // A plugin server stopped with SIGTERM (Kong's reload) exits through here when its entry point lets it.
  const atExit = () => {
    if (stateRevision() === written) return;
    try {
      writeFileSync(temporary, JSON.stringify(exportState()));
      renameSync(temporary, path);
    } catch {
      // Exiting: nowhere left to report it.
    }
  };
  process.on("exit", atExit);
  return {
    flush: write,
    stop() {
      clearInterval(every);
      clearTimeout(soon);
      process.off("exit", atExit);
    },
  };
}

function restore(path: string, log: (message: string) => void): void {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return; // first start: nothing kept yet
  }
  try {
    importState(JSON.parse(text));
  } catch (error) {
    log(`ignored unreadable state file ${path}: ${String(error)}`);
  }
}
