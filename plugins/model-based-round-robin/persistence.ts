/**
 * Keeps what the plugin learned across restarts of its plugin server (a crash, or `kong reload`, which starts a
 * fresh server): suspensions, billing benches, probe suspects, failure streaks and rotation positions, in one
 * small JSON file. The file is written after the response, never on the request path: soon after a change
 * worth keeping, and once a second while rotation positions move; read when the plugin is loaded, and again
 * for a while after when another process replaces it (a reload's old server, see REREAD_FOR_MS).
 *
 * The file is named by MODEL_BASED_ROUND_ROBIN_STATE_FILE, which the project's plugin server sets to a file in
 * Kong's prefix; unset (for example under the stock kong-js-pluginserver), nothing is kept.
 */
import { randomUUID } from "node:crypto";
import {
  closeSync,
  fsyncSync,
  openSync,
  readFileSync,
  renameSync,
  type Stats,
  statSync,
  unlinkSync,
  unwatchFile,
  watchFile,
  writeSync,
} from "node:fs";
import { open, rename, unlink } from "node:fs/promises";
import { onStateChange, stateRevision } from "./core/process-state";
import { exportState, importState } from "./core/snapshot";

export const STATE_FILE_ENV = "MODEL_BASED_ROUND_ROBIN_STATE_FILE";
/** Rotation positions move on every pick: written at most this often. */
const POSITIONS_EVERY_MS = 1000;
/** A change worth keeping (a suspension) is written this soon, coalescing the ones that come together. */
const CHANGE_DELAY_MS = 20;
/**
 * A state file is a few hundred bytes per entry (rows are bounded by the configurations); one larger than this
 * was not written by this plugin, or was grown by an older version that took in anything: it is not read.
 */
const MAX_STATE_FILE_BYTES = 64 * 1024 * 1024;
/**
 * `kong reload` starts a new plugin server while the old one finishes the requests it holds (a server Kong
 * manages): what the old one learns meanwhile, a suspension from an answer still in flight, reaches the file
 * after this server read it. For this long after the start, a file another process put in place is read again
 * for what it learned (suspensions, suspects, streaks), never for rotation positions, which this server moves now.
 */
const REREAD_FOR_MS = 5 * 60_000;
/** How often the file is looked at meanwhile (a stat). */
const REREAD_POLL_MS = 1000;
/** Inodes of this process's latest files: a file it wrote itself is not read again. */
const OWN_FILES_KEPT = 16;

export interface Persistence {
  /** Writes now if anything changed since the last write. */
  flush(): Promise<void>;
  stop(): void;
}

export function keepStateIn(path: string, log: (message: string) => void = () => {}): Persistence {
  let seenInode = inodeOf(path);
  restore(path, log);
  const ownInodes: number[] = [];
  const own = (inode: number) => {
    ownInodes.push(inode);
    if (ownInodes.length > OWN_FILES_KEPT) ownInodes.shift();
  };
  const reread = (current: Stats) => {
    if (current.ino === 0 || current.ino === seenInode || ownInodes.includes(current.ino)) return;
    seenInode = current.ino;
    restore(path, log, { positions: false });
  };
  watchFile(path, { interval: REREAD_POLL_MS, persistent: false }, reread);
  const stopRereading = () => unwatchFile(path, reread);
  const rereadEnds = setTimeout(stopRereading, REREAD_FOR_MS).unref();
  // Only a process that changed something writes: the query command loads the plugin too, and must never
  // overwrite the running server's file with what it read.
  let written = stateRevision();
  let writing: Promise<void> | undefined;
  let soon: NodeJS.Timeout | undefined;

  const write = async (): Promise<void> => {
    if (writing !== undefined) await writing;
    const revision = stateRevision();
    if (revision === written) return;
    writing = writeAtomically(path, JSON.stringify(exportState()), own)
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
    const temporary = temporaryFor(path);
    try {
      const fd = openSync(temporary, "wx", 0o600);
      try {
        writeSync(fd, JSON.stringify(exportState()));
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(temporary, path);
    } catch {
      try {
        unlinkSync(temporary);
      } catch {
        // never created
      }
      // Exiting: nowhere left to report it.
    }
  };
  process.on("exit", atExit);
  return {
    flush: write,
    stop() {
      clearInterval(every);
      clearTimeout(soon);
      clearTimeout(rereadEnds);
      stopRereading();
      process.off("exit", atExit);
    },
  };
}

/**
 * Written beside the file under a name no other writer uses (the old and the new plugin server of a reload may
 * both write), flushed to disk, then renamed over it: a reader, or a restart after a crash at any moment, finds
 * either the previous file or the new one, never part of one. A failed write leaves no temporary file behind.
 */
async function writeAtomically(path: string, text: string, own: (inode: number) => void): Promise<void> {
  const temporary = temporaryFor(path);
  try {
    const file = await open(temporary, "wx", 0o600);
    try {
      await file.writeFile(text);
      await file.sync();
      // Known as this process's own before it is in place, so that no look at the file takes it for another's.
      own((await file.stat()).ino);
    } finally {
      await file.close();
    }
    await rename(temporary, path);
  } catch (error) {
    await unlink(temporary).catch(() => {});
    throw error;
  }
}

function temporaryFor(path: string): string {
  return `${path}.${process.pid}.${randomUUID()}.tmp`;
}

function inodeOf(path: string): number {
  try {
    return statSync(path).ino;
  } catch {
    return 0;
  }
}

function restore(path: string, log: (message: string) => void, what: { positions?: boolean } = {}): void {
  let text: string;
  try {
    if (statSync(path).size > MAX_STATE_FILE_BYTES) {
      log(`ignored state file ${path}: larger than ${MAX_STATE_FILE_BYTES} bytes`);
      return;
    }
    text = readFileSync(path, "utf8");
  } catch {
    return; // first start: nothing kept yet
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    log(`ignored unreadable state file ${path}: ${String(error)}`);
    return;
  }
  importState(parsed, Date.now(), (problem) => log(`${path}: ${problem}`), what);
}
