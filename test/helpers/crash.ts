import type { TestContext } from 'node:test';

/**
 * Collects whatever reaches the process-level crash handlers while test `t` runs; assert it is
 * empty. (An uncaught exception or unhandled rejection would otherwise kill Node 20.)
 */
export function trapCrashes(t: TestContext): unknown[] {
  const caught: unknown[] = [];
  const trap = (err: unknown): void => void caught.push(err);
  process.on('uncaughtException', trap);
  process.on('unhandledRejection', trap);
  t.after(() => {
    process.off('uncaughtException', trap);
    process.off('unhandledRejection', trap);
  });
  return caught;
}
