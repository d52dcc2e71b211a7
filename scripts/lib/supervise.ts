/**
 * Runs a plugin server outside Kong, as the image's entrypoint does (kong/pluginserver-supervisor.sh): start it
 * with the command Kong's start_cmd would run, and start it again a second after it exits, for as long as the
 * supervisor lives. Kong (here the double, launched with `external: true`) only connects to the socket, so it
 * keeps no process handle and Admin `GET /` answers as on the image.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { accepts } from "../../kong-double";
import { type PluginServerSettings, socketPath, startArgv } from "../../kong-double/pluginserver-settings";

export interface Supervised {
  /** The running server's pid (undefined between an exit and the restart). */
  readonly pid: number | undefined;
  /** Resolves once the server (the first, or a restarted one) accepts connections on its socket. */
  ready(timeoutMs?: number): Promise<void>;
  /** Stops restarting, SIGTERMs the server (it writes its last state) and waits until it has exited. */
  stop(): Promise<void>;
}

const RESTART_DELAY_MS = 1000;

export function supervise(
  settings: PluginServerSettings,
  options: { env?: Record<string, string>; say: (line: string) => void },
): Supervised {
  const { say } = options;
  let child: ChildProcess | undefined;
  let stopping = false;
  let restart: NodeJS.Timeout | undefined;

  const start = () => {
    const [bin, ...args] = startArgv(settings);
    const proc = spawn(process.execPath, [bin as string, ...args], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, ...options.env },
    });
    child = proc;
    const pid = proc.pid;
    say(`[${settings.name}-supervisor] started the plugin server, pid ${pid}`);
    for (const stream of [proc.stdout, proc.stderr]) {
      let rest = "";
      stream?.on("data", (data: Buffer) => {
        const lines = (rest + data.toString("utf8")).split("\n");
        rest = lines.pop() ?? "";
        for (const line of lines) if (line.trim() !== "") say(`[${settings.name}:${pid}] ${line}`);
      });
    }
    proc.on("exit", (code, signal) => {
      if (child === proc) child = undefined;
      if (stopping) return;
      say(
        `[${settings.name}-supervisor] the plugin server (pid ${pid}) exited with ${signal ?? code}; restarting in 1 s`,
      );
      restart = setTimeout(start, RESTART_DELAY_MS);
    });
  };
  start();

  return {
    get pid() {
      return child?.pid;
    },
    async ready(timeoutMs = 15_000) {
      const path = socketPath(settings);
      const deadline = Date.now() + timeoutMs;
      while (!(await accepts(path))) {
        if (Date.now() > deadline) throw new Error(`the plugin server did not listen on ${path}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    async stop() {
      stopping = true;
      clearTimeout(restart);
      const proc = child;
      if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return;
      await new Promise<void>((r) => {
        proc.once("exit", () => r());
        proc.kill("SIGTERM");
      });
    },
  };
}
