/**
 * Below this, a deadline is raised to it: `eventually` waits for something to become true, it
 * does not time it, and a busy machine can take seconds for what an idle one does at once.
 */
const PATIENCE_MS = 10_000;

/**
 * Polls `fn` every 20 ms until it returns true or `ms` (at least 10 s) elapse; resolves to whether
 * it did.
 */
export async function eventually(
  fn: () => Promise<boolean> | boolean,
  ms: number,
): Promise<boolean> {
  const deadline = Date.now() + Math.max(ms, PATIENCE_MS);
  for (;;) {
    if (await fn()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
}
