import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // End-to-end tests create network namespaces with fixed name prefixes; run files one at a time.
    fileParallelism: false,
    // A safety net: an agent started by a test without --clock never disciplines this machine's
    // clock (CI runs as root, where --clock auto would). Tests pass --clock explicitly anyway.
    env: { BERKELEY_AGENT_CLOCK: 'virtual' },
  },
});
