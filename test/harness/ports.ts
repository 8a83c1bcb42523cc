import { createServer, Socket } from 'node:net';

/** Asks the kernel for a free loopback port (bind to 0, read it, release it). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === 'object') resolve(address.port);
        else reject(new Error('could not read the port of a probe socket'));
      });
    });
  });
}

/** Resolves true when something accepts a TCP connection on host:port. */
export function canConnect(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('error', () => done(false));
    socket.connect(port, host, () => done(true));
  });
}

/**
 * Polls until host:port accepts connections. `alive` lets the caller abort early
 * (for example when the server process has already exited); never a fixed sleep.
 */
export async function waitForPort(
  host: string,
  port: number,
  opts: { timeoutMs: number; what: string; alive?: () => string | undefined },
): Promise<void> {
  const deadline = Date.now() + opts.timeoutMs;
  let delay = 25;
  for (;;) {
    const dead = opts.alive?.();
    if (dead) throw new Error(`${opts.what} stopped before it accepted connections: ${dead}`);
    if (await canConnect(host, port, 500)) return;
    if (Date.now() > deadline) {
      throw new Error(
        `${opts.what} did not accept connections on ${host}:${port} within ${opts.timeoutMs} ms`,
      );
    }
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 250);
  }
}
