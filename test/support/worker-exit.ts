/**
 * The end of a test worker process: `close` (once, however often it is asked for), then exit
 * with `code` even when closing fails.
 */
export function exitOnce(
  close: () => Promise<unknown> | undefined,
): (code: number) => Promise<void> {
  let closing: Promise<void> | undefined;
  return (code) => {
    closing ??= (async () => {
      try {
        await close();
      } finally {
        process.exit(code);
      }
    })();
    return closing;
  };
}
