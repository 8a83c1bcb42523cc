import { createHook, type AsyncHook } from 'node:async_hooks';

/** Resource types that mean a socket, server or timer is still open. */
const LEAK_TYPES = new Set(['TCPSocketWrap', 'TCPServerWrap', 'TCPWRAP', 'Timeout', 'Immediate']);

interface TimerLike {
  hasRef?(): boolean;
  _destroyed?: boolean;
}

/**
 * What a test leaves open: sockets, servers and timers of this process beyond those open when
 * the watch began (`process.getActiveResourcesInfo`, which counts only timers that keep the
 * process alive). Timers created during the watch are remembered with where they were created,
 * so a leftover one is named, not only counted: `Timeout +1 (at host.js:270 ← …)`.
 */
export class OpenResources {
  private readonly baseline = OpenResources.count();
  private readonly timers = new Map<number, { timer: TimerLike; at: Error }>();
  private readonly hook: AsyncHook | undefined;

  private constructor(stacks: boolean) {
    if (!stacks) return;
    this.hook = createHook({
      init: (id, type, _trigger, resource) => {
        // The stack is formatted only if the timer is reported.
        if (type === 'Timeout')
          this.timers.set(id, { timer: resource as TimerLike, at: new Error() });
      },
      destroy: (id) => void this.timers.delete(id),
    }).enable();
  }

  /**
   * `stacks`: remember where each new timer was created. An async hook with `init` makes Node
   * track every promise too, which slows promise-heavy code: leave it off where speed is measured.
   */
  static watch(o: { stacks?: boolean } = {}): OpenResources {
    return new OpenResources(o.stacks ?? false);
  }

  /** What is open now beyond the baseline, e.g. `Timeout +1 (at …)`; [] when nothing. */
  left(): string[] {
    return Object.entries(OpenResources.count())
      .filter(([type, n]) => n > (this.baseline[type] ?? 0))
      .map(([type, n]) => {
        const line = `${type} +${n - (this.baseline[type] ?? 0)}`;
        return type === 'Timeout' && this.hook ? `${line} (${this.liveTimers().join('; ')})` : line;
      });
  }

  /** Stops remembering new timers. */
  stop(): void {
    this.hook?.disable();
    this.timers.clear();
  }

  private liveTimers(): string[] {
    const out: string[] = [];
    for (const { timer, at } of this.timers.values()) {
      if (timer._destroyed || timer.hasRef?.() === false) continue;
      const frames = (at.stack ?? '')
        .split('\n')
        .slice(1)
        .filter((f) => !f.includes('node:internal') && !f.includes('open-resources'))
        .slice(0, 4)
        .map((f) =>
          f
            .trim()
            .replace(/^at /, '')
            .replace(/.*node_modules\//, ''),
        );
      out.push(`at ${frames.join(' ← ')}`);
    }
    return out.length ? out : ['created before the watch'];
  }

  private static count(): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const type of process.getActiveResourcesInfo()) {
      if (LEAK_TYPES.has(type)) counts[type] = (counts[type] ?? 0) + 1;
    }
    return counts;
  }
}
