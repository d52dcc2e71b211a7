import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["spec/**/*.test.ts"],
    // The JSON report lets .ci/run print one plain "N passed, N failed" line at the end.
    reporters: ["default", ["json", { outputFile: ".tmp/vitest-report.json" }]],
    globalSetup: ["spec/setup/build.ts"],
    // Integration tests spawn the real kong-js-pluginserver and listen on real sockets:
    // separate processes keep one file's servers from sharing a module registry with another's.
    pool: "forks",
    // Two files at a time even on 2 cores (vitest's default there is 1): most of a file's time is spent waiting
    // for child processes (plugin servers, redis-server) and sockets, not on the CPU of the worker.
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
