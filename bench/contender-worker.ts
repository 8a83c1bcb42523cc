import { CONTENDERS } from './contenders';
import type { ContenderBody } from './isolated';

/**
 * One benchmark contender in a process of its own (see `isolated.ts`): builds it from
 * BENCH_CONTENDER, answers `ready`, then runs and times what the parent asks for.
 */
async function main(): Promise<void> {
  const { factory, args } = JSON.parse(process.env.BENCH_CONTENDER ?? '{}') as {
    factory: keyof typeof CONTENDERS;
    args: never;
  };
  const build = CONTENDERS[factory] as ((args: never) => Promise<ContenderBody>) | undefined;
  if (!build) throw new Error(`no contender factory named ${JSON.stringify(factory)}`);
  const body = await build(args);
  process.on('message', (m: { cmd: 'run'; ops: number } | { cmd: 'close' }) => {
    if (m.cmd === 'close') {
      void body.close().finally(() => process.disconnect());
      return;
    }
    const t0 = process.hrtime.bigint();
    body.run(m.ops).then(
      () => process.send!({ type: 'done', seconds: Number(process.hrtime.bigint() - t0) / 1e9 }),
      (err: unknown) => process.send!({ type: 'error', message: String(err) }),
    );
  });
  process.send!({ type: 'ready' });
}

main().catch((err: unknown) => {
  process.send!({ type: 'error', message: err instanceof Error ? err.message : String(err) });
  process.disconnect();
});
