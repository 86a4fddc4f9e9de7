import { defineConfig } from 'vitest/config';

// Tests run against packages/*/src through the "source" export condition: no build needed.
const conditions = ['source', 'module', 'node', 'import', 'default'];

export default defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions, externalConditions: ['source'] } },
  test: {
    include: ['packages/*/src/**/*.test.ts', 'bench/**/*.test.ts', 'examples/*/*.test.ts'],
    // One GPU device per worker; lavapipe uses every core itself, so run files one at a time.
    pool: 'forks',
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    setupFiles: ['./vitest.setup.ts'],
  },
});
