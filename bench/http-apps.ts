import type { INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';

/**
 * The HTTP benchmarks' apps, each a Nest app in a process of its own, and their pinning: the apps
 * on CPU 0 and the load generator (this process) on CPU 1, when `taskset` and two CPUs are there.
 */
export const PINNED = availableParallelism() >= 2 && hasTaskset();

function hasTaskset(): boolean {
  try {
    execFileSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Moves this process (the load generator) to CPU 1 when the apps are pinned to CPU 0. */
export function pinLoadGenerator(): void {
  if (PINNED) execFileSync('taskset', ['-p', '-c', '1', String(process.pid)], { stdio: 'ignore' });
}

/** Starts `worker` (a file of bench/, run by ts-node) with `env`; resolves with its port. */
export async function startApp(
  worker: string,
  env: Record<string, string> = {},
): Promise<{ child: ChildProcess; port: number }> {
  const node = [process.execPath, '-r', 'ts-node/register/transpile-only', join(__dirname, worker)];
  const [command, ...args] = PINNED ? ['taskset', '-c', '0', ...node] : node;
  const child = spawn(command, args, {
    env: { ...process.env, TS_NODE_PROJECT: join(__dirname, '..', 'tsconfig.json'), ...env },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('message', (m) => resolve((m as { port: number }).port));
    child.once('exit', (code) => reject(new Error(`${worker} exited with ${code}`)));
  });
  return { child, port };
}

/** Asks an app started by {@link startApp} to close, and waits for its exit. */
export async function stopApp(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.send({ cmd: 'close' });
  await exited;
}

/** The worker's side: serves `module` on a free loopback port, tells it, closes when told. */
export function serveApp(module: unknown): void {
  const main = async () => {
    const app: INestApplication = await NestFactory.create(module as never, { logger: false });
    await app.listen(0, '127.0.0.1');
    const address = app.getHttpServer().address() as { port: number };
    process.send!({ port: address.port });
    process.on('message', (m: { cmd: string }) => {
      if (m.cmd === 'close') void app.close().then(() => process.exit(0));
    });
  };
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
