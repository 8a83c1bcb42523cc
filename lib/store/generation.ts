import type { Clock } from '../clock';
import { TieredCacheError } from '../errors';
import type { KeyBuilder } from '../keys/key-builder';
import type { BackgroundWork } from './background';
import { FAILED, type TierSlot } from './tier-slot';

/** What the generation needs from the store around it. */
export interface GenerationSetup {
  keys: KeyBuilder;
  /** The tier holding the generation counter (the counter authority); none: this process only. */
  authority: TierSlot | undefined;
  clock: Clock;
  refreshMs: number;
  background: BackgroundWork;
  /** Called when the generation moves: the local tier must be emptied, older reads ignored. */
  onChange: () => void;
}

/**
 * This namespace's generation: a number in every final key, bumped by `clear()` on the counter
 * authority, so that clearing invalidates the namespace on every instance without flushing shared
 * servers. Reads re-check it every `refreshMs` (in the background).
 */
export class Generation {
  private lastCheck = 0;
  private refreshing: Promise<void> | undefined;

  constructor(private readonly setup: GenerationSetup) {}

  get current(): number {
    return this.setup.keys.generation;
  }

  /** Whether the counter authority's generation can be read now (it connected). */
  get reachable(): boolean {
    return this.setup.authority?.connected !== false;
  }

  /** Schedules a background re-read when the last one is `refreshMs` old; `now` is the clock's. */
  checkDue(now: number): void {
    if (now - this.lastCheck < this.setup.refreshMs) return;
    this.lastCheck = now;
    this.refreshing ??= this.setup.background
      .track(this.refresh())
      .finally(() => (this.refreshing = undefined));
  }

  /**
   * Re-reads the generation from the counter authority now; when it changed, moves to it (the
   * local tier is emptied).
   */
  async refresh(): Promise<void> {
    const { authority, keys, clock } = this.setup;
    this.lastCheck = clock.now();
    if (authority === undefined) return;
    const gen = await authority.call('generation', undefined, () =>
      authority.tier.increment!(keys.generationKey, 0, 0),
    );
    if (gen !== FAILED && gen !== keys.generation) this.start(gen);
  }

  /** Bumps the generation: on the counter authority (every instance), else in this process. */
  async bump(): Promise<void> {
    const { authority, keys, clock } = this.setup;
    if (authority === undefined) {
      this.start(keys.generation + 1);
    } else {
      const gen = await authority.call('clear', undefined, () =>
        authority.tier.increment!(keys.generationKey, 1, 0),
      );
      if (gen === FAILED)
        throw new TieredCacheError(
          'E_TIER_FAILED',
          `clear(): ${authority.name} could not bump the namespace generation`,
        );
      this.start(Math.max(gen, keys.generation + 1));
    }
    this.lastCheck = clock.now();
  }

  /**
   * Another instance cleared the namespace and is now at `gen`: moves there at once (without a
   * counter authority, generations are per process: this one simply starts a new one).
   */
  adopt(gen: number): void {
    const { authority, keys, clock } = this.setup;
    if (authority === undefined) this.start(keys.generation + 1);
    else if (gen > keys.generation) this.start(gen);
    this.lastCheck = clock.now();
  }

  /** Moves to generation `gen`: new final keys, and the store forgets what it held locally. */
  private start(gen: number): void {
    this.setup.keys.generation = gen;
    this.setup.onChange();
  }
}
