// Mutation testing of the domain core: `npm run mutate`. Not part of `npm test` or CI; it takes
// minutes, not seconds. See README, "Mutation testing".
/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: 'tap',
  plugins: ['@stryker-mutator/tap-runner'],
  mutate: [
    'domain/hub.ts',
    'domain/fair-scheduler.ts',
    'domain/log-throttle.ts',
    'domain/session.ts',
    'domain/session-auth.ts',
    'domain/session-channels.ts',
    'domain/session-streams.ts',
    'domain/unauthenticated.ts',
    'domain/broker-memory.ts',
    'domain/broker-redis.ts',
    'domain/streams.ts',
    'domain/channels.ts',
  ],
  tap: {
    // The domain-level tests: fake connections, the real hub, brokers and Redis, a second or
    // a few each. The route tests over real sockets cover the same code but cost 5-20 s a
    // file, which per mutant does not fit the budget; fuzz.test.ts (9 s, property runs) is
    // left to `npm test` for the same reason.
    testFiles: [
      'test/domain/hub.test.ts',
      'test/domain/hub-indexes.test.ts',
      'test/domain/hub-fairness.test.ts',
      'test/domain/fair-scheduler.test.ts',
      'test/domain/log-throttle.test.ts',
      'test/domain/session.test.ts',
      'test/domain/session-requests.test.ts',
      'test/domain/broker-memory.test.ts',
      'test/domain/broker-redis-live.test.ts',
      'test/domain/broker-redis-connection.test.ts',
      'test/domain/broker-redis.test.ts',
      'test/domain/broker-redis-recovery.test.ts',
      'test/domain/tenant-key.test.ts',
      'test/domain/unauthenticated.test.ts',
    ],
    // The tap runner starts `node <nodeArgs> <file>` per test file. tsx transpiles as tap's
    // own loader (ts-node, transpile only on Node 20) does, and starts faster.
    nodeArgs: ['-r', '{{hookFile}}', '--import', 'tsx', '{{testFile}}'],
    forceBail: true,
  },
  coverageAnalysis: 'perTest',
  incremental: true,
  incrementalFile: 'reports/stryker-incremental.json',
  concurrency: 2,
  timeoutMS: 10000,
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/mutation.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  ignorePatterns: ['dist', 'coverage', '.tap', 'bench/results', 'test-artifacts', 'reports'],
  tempDirName: '.stryker-tmp',
  cleanTempDir: true,
}
