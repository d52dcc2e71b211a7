/**
 * Where the plugin says what happens outside a request (the state file, Redis coming and going, the status
 * listener): kong.log needs a request (it is a PDK call), so these lines go to the plugin server's stderr, which
 * Kong copies into its error log. Never stdout: the query command's stdout must stay pure JSON.
 */
export function logToStderr(message: string): void {
  process.stderr.write(`[model-based-round-robin] ${message}\n`);
}
