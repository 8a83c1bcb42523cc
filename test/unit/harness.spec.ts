import { createServer, type Server } from 'node:net';
import { canConnect, freePort, waitForPort } from '../harness/ports';
import { requireCommand } from '../harness/processes';

describe('test harness', () => {
  let server: Server | undefined;
  afterEach(
    () => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve())),
  );

  it('finds a free port that can then be listened on', async () => {
    const port = await freePort();
    expect(await canConnect('127.0.0.1', port, 200)).toBe(false);
    server = createServer();
    await new Promise<void>((resolve) => server!.listen(port, '127.0.0.1', resolve));
    expect(await canConnect('127.0.0.1', port, 200)).toBe(true);
  });

  it('waits until a port accepts connections', async () => {
    const port = await freePort();
    server = createServer();
    setTimeout(() => server!.listen(port, '127.0.0.1'), 100);
    await expect(
      waitForPort('127.0.0.1', port, { timeoutMs: 5000, what: 'late server' }),
    ).resolves.toBeUndefined();
  });

  it('fails fast, naming the server, when its process has died', async () => {
    const port = await freePort();
    const started = Date.now();
    await expect(
      waitForPort('127.0.0.1', port, {
        timeoutMs: 30_000,
        what: 'memcached X',
        alive: () => 'exited (code 1)',
      }),
    ).rejects.toThrow('memcached X stopped before it accepted connections: exited (code 1)');
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('gives up after its timeout with the address in the message', async () => {
    const port = await freePort();
    await expect(
      waitForPort('127.0.0.1', port, { timeoutMs: 200, what: 'cassandra' }),
    ).rejects.toThrow(`cassandra did not accept connections on 127.0.0.1:${port} within 200 ms`);
  });

  it('names the package to install when a server binary is missing', () => {
    expect(() =>
      requireCommand('no-such-memcached-binary', [], 'install the Debian package "memcached"'),
    ).toThrow(
      /'no-such-memcached-binary' was not found on PATH: install the Debian package "memcached"/,
    );
  });
});
