/**
 * The image runs its plugin server outside Kong (Kong 3.9.1-3.9.3's Admin GET / answers 500 while Kong manages
 * one, and `kong reload` replaces a managed one): the Dockerfile gives Kong no start command, and the entrypoint
 * kong/pluginserver-supervisor.sh starts the server before Kong and restarts it. The static checks read the
 * Dockerfile; the others run the real script with the real plugin server (or a command that crashes), a stand-in
 * for Kong's entrypoint, and read the supervisor's log lines (no timing is asserted).
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, posix, resolve } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { accepts } from "../../kong-double";
import {
  imageSettings,
  SUPERVISED_COMMAND_ENV,
  socketPath,
  startArgv,
} from "../../kong-double/pluginserver-settings";
import { envOf, readDockerfile } from "./dockerfile";

const SCRIPT = "kong/pluginserver-supervisor.sh";
const dockerfile = readDockerfile(readFileSync("kong/Dockerfile", "utf8"));
const finalStage = Math.max(...dockerfile.map((i) => i.stage));
const env = envOf(dockerfile, finalStage);
const settings = imageSettings(process.cwd());
const final = dockerfile.filter((i) => i.stage === finalStage);

describe("kong/Dockerfile: the plugin server runs outside Kong", () => {
  it("gives Kong no start command, only the socket and the query command Kong 3.9 requires", () => {
    expect(Object.keys(env).filter((k) => /^KONG_PLUGINSERVER_.*_START_CMD$/.test(k))).toEqual([]);
    expect(env.KONG_PLUGINSERVER_MODEL_BASED_ROUND_ROBIN_QUERY_CMD).toMatch(/^\/.* --dump-all-plugins$/);
    expect(env[SUPERVISED_COMMAND_ENV]).toBe(startArgv(settings).join(" "));
  });

  it("installs nothing at /usr/local/bin/<name>, which Kong would take as the start command", () => {
    const kongDefault = `/usr/local/bin/${settings.name}`;
    const text = final.map((i) => i.args).join("\n");
    expect(text).not.toMatch(new RegExp(`${kongDefault.replace(/[/.-]/g, "\\$&")}(?![\\w-])`));
    expect(settings.serverBin).not.toBe(kongDefault);
  });

  it("enters through the supervisor, which hands over to the base image's /docker-entrypoint.sh", () => {
    const entrypoint = JSON.parse(final.filter((i) => i.keyword === "ENTRYPOINT").at(-1)?.args ?? "[]");
    expect(entrypoint).toEqual(["/usr/local/bin/model-based-round-robin-supervisor"]);
    expect(final.some((i) => i.keyword === "COPY" && i.args === `${SCRIPT} ${entrypoint[0]}`)).toBe(true);
    expect(readFileSync(SCRIPT, "utf8")).toContain(":-/docker-entrypoint.sh}");
    expect(JSON.parse(final.filter((i) => i.keyword === "CMD").at(-1)?.args ?? "[]")).toEqual([
      "kong",
      "docker-start",
    ]);
  });

  it("keeps the socket out of the prefix's top level, whose sockets docker-entrypoint.sh deletes, in a directory Kong's user owns", () => {
    const dir = posix.dirname(socketPath(settings));
    expect(dir).not.toBe("/usr/local/kong");
    expect(dir).not.toBe("/usr/local/kong/sockets");
    const runs = final.filter((i) => i.keyword === "RUN").map((i) => i.args);
    expect(runs.some((r) => r.includes(`mkdir -p ${dir}`) && new RegExp(`chown .*${dir}`).test(r))).toBe(
      true,
    );
  });
});

describe("kong/pluginserver-supervisor.sh", () => {
  let supervisor: ChildProcess | undefined;

  afterEach(async () => {
    if (supervisor?.pid !== undefined) {
      try {
        process.kill(-supervisor.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    supervisor = undefined;
  });

  /**
   * Runs the script with the real plugin server (or `command`) and a stand-in for Kong's entrypoint that records
   * its argv.
   */
  function run(
    args: string[],
    options: { command?: (dir: string) => string; env?: Record<string, string> } = {},
  ) {
    const dir = mkdtempSync(join(tmpdir(), "supervisor-"));
    const local = { ...settings, kongPrefix: dir, pluginsDirectory: resolve("dist/plugins") };
    const [bin, ...rest] = startArgv({ ...local, serverBin: resolve("dist/pluginserver/main.js") });
    const fakeKong = join(dir, "entrypoint.sh");
    writeFileSync(fakeKong, `#!/bin/sh\necho "$@" > ${dir}/kong-argv\nexec sleep 60\n`);
    chmodSync(fakeKong, 0o755);
    const log: string[] = [];
    supervisor = spawn("sh", [SCRIPT, ...args], {
      detached: true,
      stdio: ["ignore", "ignore", "pipe"],
      env: {
        ...process.env,
        [SUPERVISED_COMMAND_ENV]: options.command?.(dir) ?? [process.execPath, bin, ...rest].join(" "),
        MODEL_BASED_ROUND_ROBIN_KONG_ENTRYPOINT: fakeKong,
        ...options.env,
      },
    });
    supervisor.stderr?.on("data", (d: Buffer) => log.push(...d.toString().split("\n").filter(Boolean)));
    const pids = () =>
      log.flatMap((l) => /started the plugin server, pid (\d+)/.exec(l)?.[1] ?? []).map(Number);
    /** What each exit line announced: "now", or the wait in seconds. */
    const restarts = () =>
      log.flatMap((l) => {
        const m =
          /exited with \d+ after \d+ s(?:; restarting (now)|, again within \d+ s; restarting in (\d+) s)$/.exec(
            l,
          );
        return m === null ? [] : [m[1] ?? (m[2] as string)];
      });
    return { dir, socket: socketPath(local), log, pids, restarts };
  }

  it("starts the plugin server before Kong, then runs Kong's entrypoint with the same arguments", async () => {
    const { dir, socket } = run(["kong", "docker-start"]);
    await waitFor(() => accepts(socket), 15_000);
    await waitFor(async () => readFileSync(join(dir, "kong-argv"), "utf8") === "kong docker-start\n", 5000);
  });

  it("restarts the server at once when it dies, and waits 1 s when it dies again soon", async () => {
    // Runs under 1,000 s count as "soon": the second crash is a repeat whatever the machine's speed.
    const { socket, pids, log, restarts } = run(["kong", "docker-start"], {
      env: { MODEL_BASED_ROUND_ROBIN_RESTART_STABLE_AFTER: "1000" },
    });
    await waitFor(() => accepts(socket), 15_000);
    const first = pids()[0] as number;
    process.kill(first, "SIGKILL");
    await waitFor(async () => pids().length === 2, 5000);
    expect(
      log.some((l) => new RegExp(`pid ${first}\\) exited with 137 after \\d+ s; restarting now$`).test(l)),
    ).toBe(true);
    // The new server listens on the same socket (it removes the stale one first).
    await waitFor(() => accepts(socket), 15_000);
    process.kill(pids()[1] as number, "SIGKILL");
    await waitFor(async () => pids().length === 3, 5000);
    await waitFor(() => accepts(socket), 15_000);
    expect(restarts()).toEqual(["now", "1"]);
  });

  it("backs off while crashes repeat (1 s, doubling, capped), and restarts at once after a run that lasted", {
    timeout: 60_000,
  }, async () => {
    // A server that crashes at once, except its fifth run, which lasts 4 s (past the 3 s that make a run stable).
    const { restarts } = run(["kong", "docker-start"], {
      command: (dir) => {
        const script = join(dir, "crash.sh");
        writeFileSync(
          script,
          `n=$(cat ${dir}/runs 2>/dev/null || echo 0); n=$((n + 1)); echo $n > ${dir}/runs\n` +
            `[ "$n" -eq 5 ] && sleep 4\nexit 3\n`,
        );
        return `sh ${script}`;
      },
      env: {
        MODEL_BASED_ROUND_ROBIN_RESTART_STABLE_AFTER: "3",
        MODEL_BASED_ROUND_ROBIN_RESTART_BACKOFF_MAX: "2",
      },
    });
    await waitFor(async () => restarts().length >= 6, 45_000);
    expect(restarts().slice(0, 6)).toEqual(["now", "1", "2", "2", "now", "1"]);
  });

  it("refuses restart settings that are not whole seconds", async () => {
    const out = spawnSync("sh", [SCRIPT, "kong", "docker-start"], {
      encoding: "utf8",
      env: {
        ...process.env,
        [SUPERVISED_COMMAND_ENV]: "true",
        MODEL_BASED_ROUND_ROBIN_RESTART_BACKOFF_MAX: "1.5",
      },
    });
    expect(out.status).toBe(2);
    expect(out.stderr).toContain("must be whole seconds");
  });

  it("starts no server for any other command (kong version, a shell)", async () => {
    const { dir, pids } = run(["kong", "version"]);
    await waitFor(async () => readFileSync(join(dir, "kong-argv"), "utf8") === "kong version\n", 5000);
    await new Promise((r) => setTimeout(r, 300));
    expect(pids()).toEqual([]);
  });
});

async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await condition()) return;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 50));
  }
}
