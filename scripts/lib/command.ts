/**
 * What every command of the project does with a wrong argument or a failure: one line on stderr naming the
 * command and the problem, never a stack trace (exit 2 for arguments, 1 for a failure).
 */
import { type ParseArgsConfig, parseArgs } from "node:util";

/** parseArgs, or `<command>: <what is wrong>` and exit 2. */
export function commandArgs<T extends ParseArgsConfig>(
  command: string,
  config: T,
): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (error) {
    process.stderr.write(`${command}: ${(error as Error).message}\n`);
    process.exit(2);
  }
}

/** For `main().catch(...)`: `<command> failed: <message>` and exit code 1. */
export function commandFailed(command: string): (error: unknown) => void {
  return (error) => {
    process.stderr.write(`${command} failed: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  };
}
