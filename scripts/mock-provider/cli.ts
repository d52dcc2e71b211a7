#!/usr/bin/env node
/**
 * Starts the project's mock OpenAI-compatible provider (./index.ts) as a process, for
 * docker-compose and manual tries. Control it over HTTP: POST /__mock/fail {"status":429,"headers":{...},
 * "model":"gpt-4o","times":1}, POST /__mock/default, POST /__mock/reset, GET /__mock/requests.
 *
 *   mock-provider [--port 8080] [--host 0.0.0.0] [--name provider-a] [--stream-chunk-delay-ms 50]
 * Environment variables of the same meaning: MOCK_PORT, MOCK_HOST, MOCK_NAME, MOCK_STREAM_CHUNK_DELAY_MS.
 */
import { parseArgs } from "node:util";
import { startMockProvider } from ".";

// Its image ships only this directory: the one-line error is written here, not through scripts/lib/command.
const { values } = (() => {
  try {
    return parseArgs({
      options: {
        port: { type: "string", default: process.env.MOCK_PORT ?? "8080" },
        host: { type: "string", default: process.env.MOCK_HOST ?? "0.0.0.0" },
        name: { type: "string", default: process.env.MOCK_NAME ?? "mock-provider" },
        "stream-chunk-delay-ms": { type: "string", default: process.env.MOCK_STREAM_CHUNK_DELAY_MS ?? "50" },
      },
    });
  } catch (error) {
    process.stderr.write(`mock-provider: ${(error as Error).message}\n`);
    process.exit(2);
  }
})();

const port = Number(values.port);
const delay = Number(values["stream-chunk-delay-ms"]);
if (!Number.isInteger(port) || port < 0 || port > 65535 || !Number.isFinite(delay) || delay < 0) {
  process.stderr.write(
    "mock-provider: --port must be 0-65535 and --stream-chunk-delay-ms a non-negative number\n",
  );
  process.exit(2);
}

startMockProvider({ port, host: values.host, name: values.name, streamChunkDelayMs: delay }).then(
  (mock) => {
    process.stdout.write(`mock provider ${mock.name} listening on ${values.host}:${mock.port}\n`);
    const stop = () => void mock.close().then(() => process.exit(0));
    process.on("SIGTERM", stop);
    process.on("SIGINT", stop);
  },
  (error: unknown) => {
    process.stderr.write(`mock-provider: ${(error as Error).message}\n`);
    process.exit(1);
  },
);
