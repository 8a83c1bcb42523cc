import { type ChildProcess, fork } from 'node:child_process';
import { join } from 'node:path';
import { CONTENDERS } from './contenders';
import type { Contender } from './measure';

/** What a contender factory builds inside its process (see `contender-worker.ts`). */
export interface ContenderBody {
  /** Runs `ops` operations; resolves when all are done. */
  run(ops: number): Promise<void>;
  close(): Promise<void>;
}

/** A contender in a process of its own; `close()` ends the process. */
export interface IsolatedContender extends Contender {
  close(): Promise<void>;
}

type WorkerMessage =
  { type: 'ready' } | { type: 'done'; seconds: number } | { type: 'error'; message: string };

const WORKER = join(__dirname, 'contender-worker.ts');

/**
 * Starts contender `name`, built by `factory` (see `contenders.ts`) from `args` (JSON), in a
 * process of its own. `compare` drives it like any other contender: it runs when told,
 * times its own operations (so the figures hold no IPC) and is otherwise idle.
 *
 * Why remote-hit contenders get their own process: each keeps requests in flight, and whatever a
 * young-generation collection finds in flight is copied, then promoted to the old generation,
 * where it dies. In one shared heap that promoted garbage, and the young objects it still points
 * at, are the next contender's to scan and copy too: measured on a memcached hit, a shared heap
 * made each scavenge about four times as long as either client alone, grew the old generation on
 * every one, and moved both clients' figures by 20-40% in opposite directions depending on what
 * the other had left. An app runs one client, in its own heap; so does each contender here. The
 * processes still share the machine, so rounds stay paired and alternate (see `measure.ts`).
 */
export async function isolated(
  name: string,
  factory: keyof typeof CONTENDERS,
  args: unknown,
): Promise<IsolatedContender> {
  if (process.env.BENCH_SHARED_HEAP === '1') return inThisProcess(name, factory, args);
  const child = fork(WORKER, [], {
    execArgv: ['-r', 'ts-node/register/transpile-only'],
    env: {
      ...process.env,
      TS_NODE_PROJECT: join(__dirname, '..', 'tsconfig.json'),
      BENCH_CONTENDER: JSON.stringify({ factory, args }),
    },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  await reply(child, name);
  return {
    name,
    run: async (ops) => {
      child.send({ cmd: 'run', ops });
      const m = await reply(child, name);
      return m.type === 'done' ? m.seconds : undefined;
    },
    close: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.send({ cmd: 'close' });
      await exited;
    },
  };
}

/**
 * The same contender built in this process (`BENCH_SHARED_HEAP=1`), to see what sharing one heap
 * does to the figures.
 */
async function inThisProcess(
  name: string,
  factory: keyof typeof CONTENDERS,
  args: unknown,
): Promise<IsolatedContender> {
  const body = await (CONTENDERS[factory] as (args: unknown) => Promise<ContenderBody>)(args);
  return { name, run: (ops) => body.run(ops), close: () => body.close() };
}

/** The worker's next answer; rejects on its `error` answer or its exit. */
function reply(child: ChildProcess, name: string): Promise<WorkerMessage> {
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null) => {
      child.off('message', onMessage);
      reject(new Error(`${name}: contender process exited with ${code}`));
    };
    const onMessage = (m: WorkerMessage) => {
      child.off('exit', onExit);
      child.off('message', onMessage);
      if (m.type === 'error') reject(new Error(`${name}: ${m.message}`));
      else resolve(m);
    };
    child.once('exit', onExit);
    child.on('message', onMessage);
  });
}
