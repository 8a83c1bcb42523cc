import { type ChildProcess, fork } from 'node:child_process';
import { join } from 'node:path';

/**
 * Forks `test/support/<file>` as a TypeScript worker (ts-node, transpile only: tests run as ES
 * modules, the workers as CommonJS) with `env` added, and resolves once it sends `ready`;
 * rejects with `label` when it exits or reports an error first.
 */
export async function forkTsWorker(
  file: string,
  env: Record<string, string>,
  label: string,
): Promise<ChildProcess> {
  const child = fork(join(process.cwd(), 'test', 'support', file), [], {
    execArgv: ['-r', 'ts-node/register/transpile-only'],
    env: { ...process.env, TS_NODE_PROJECT: join(process.cwd(), 'tsconfig.json'), ...env },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  await new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`${label} exited with ${code}`)));
    child.once('message', (m: { type: string; message?: string }) =>
      m.type === 'ready' ? resolve() : reject(new Error(`${label}: ${m.message}`)),
    );
  });
  child.removeAllListeners('exit');
  return child;
}

/** Stops a worker with `stop` (a signal, an exit command); resolves once it has exited. */
export function stopWorker(child: ChildProcess, stop: () => void): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  stop();
  return exited;
}
