/**
 * What tests around the Kong double share: the probe fixture plugin's declarative configuration, and
 * stopping a plugin server a test ran by hand.
 */
import type { ChildProcess } from "node:child_process";

/** The probe plugin on one service (route /probe) in front of `upstreamUrl`/base, with other plugins beside it. */
export function probeService(upstreamUrl: string, message = "configured", ...others: object[]): object {
  return {
    _format_version: "3.0",
    services: [
      {
        name: "svc",
        url: `${upstreamUrl}/base`,
        routes: [{ name: "r", paths: ["/probe"] }],
        plugins: [{ name: "probe", config: { message } }, ...others],
      },
    ],
  };
}

/** SIGTERMs a child process that still runs and waits until it has exited. */
export async function stopChild(child: ChildProcess | undefined): Promise<void> {
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  await exited;
}
