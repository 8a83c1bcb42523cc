/** Polls `fn` every 20 ms until it returns true or `ms` elapse; resolves to whether it did. */
export async function eventually(
  fn: () => Promise<boolean> | boolean,
  ms: number,
): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await fn()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
}
