import { waitAtMost } from '../clock';
import { busConfig, type BusConfig, type BusOptions } from '../bus/bus.options';
import { InvalidationBus, type BusStats } from '../bus/invalidation-bus';
import type { InvalidationMessage, TagInvalidation } from '../bus/invalidation-message';
import type { KeyBuilder } from '../keys/key-builder';
import type { LocalTier } from '../tiers/tier.interface';
import type { Generation } from './generation';
import type { MutationLog } from './mutation-log';
import type { TagTimes } from './tag-times';
import type { TierSlot } from './tier-slot';

/** What the bus reports, as the store's `bus` event. */
export interface BusEvent {
  /**
   * - `down`: invalidations may be missed from now on (local tiers flushed, degraded cap on);
   * - `up`: the bus is back (local tiers flushed once more: what was missed meanwhile is gone);
   * - `gap`: a message of another instance was missed (local tiers flushed);
   * - `invalidated`: another instance's message was applied (emitted only when listened to).
   */
  type: 'down' | 'up' | 'gap' | 'invalidated';
  message: string;
  /** `invalidated`: the message; `at` is when it was sent. */
  invalidation?: InvalidationMessage;
}

export interface CoherenceSetup {
  bus: BusOptions | undefined;
  slots: readonly TierSlot[];
  keys: KeyBuilder;
  mutations: MutationLog;
  generation: Generation;
  tags: TagTimes;
  /** Whether anyone listens to `invalidated` events (they are not built otherwise). */
  listening: () => boolean;
  emit: (event: BusEvent) => void;
}

/**
 * Keeps this instance's local tiers (the memory tier, and memcached tiers marked `local: true`)
 * coherent with the others through the invalidation bus: announces what this instance changes,
 * drops what others change, flushes when something may have been missed, and caps new local
 * entries at `bus.degradedTtl` while the bus is down. Without a `bus` option it does nothing.
 */
export class Coherence {
  private readonly config: BusConfig | undefined;
  private readonly local: readonly TierSlot[];
  private readonly bus: InvalidationBus | undefined;
  private starting: Promise<void> | undefined;
  private closed = false;
  /** Whether the bus has been up before. */
  private wasUp = false;
  /** Resolves `connect()`'s wait for the subscription. */
  private onUp: (() => void) | undefined;

  constructor(private readonly setup: CoherenceSetup) {
    this.config = busConfig(setup.bus);
    this.local = setup.slots.filter((s) => s.local || s.perHost);
    const config = this.config;
    if (config === undefined) return;
    // Built now, its transport on first use: keys changed before then are published once it
    // is ready, not lost.
    this.bus = new InvalidationBus({
      transport: config.transport,
      channel: `tiered-cache:${setup.keys.namespace}:invalidations`,
      maxQueue: config.maxQueue,
      handlers: {
        invalidate: (m) => this.apply(m),
        flush: (reason) => this.flush('gap', reason),
        state: (up, reason) => {
          this.degrade(!up);
          this.flush(up ? 'up' : 'down', reason);
          if (up) this.onUp?.();
        },
      },
    });
    // Down until subscribed: nothing local may outlive the degraded cap before then.
    this.degrade(true);
  }

  /** Connects the bus (once); a broker that cannot be reached yet is retried by the transport. */
  start(): Promise<void> {
    if (this.bus === undefined || this.closed) return Promise.resolve();
    this.starting ??= this.open(this.bus, this.config!);
    return this.starting;
  }

  private async open(bus: InvalidationBus, config: BusConfig): Promise<void> {
    // Waits (up to the bus timeout) for the subscription, so that a store connected to a broker
    // that answers starts coherent, without a degraded start.
    const up = new Promise<void>((resolve) => (this.onUp = resolve));
    await bus.start();
    if (!bus.isUp) await waitAtMost(up, config.timeoutMs);
    this.onUp = undefined;
  }

  /** This instance wrote, deleted or counted `keys` (caller keys): tell the others. */
  changed(keys: readonly string[]): void {
    this.announcing()?.keysChanged(keys);
  }

  /** {@link changed} of one key. */
  changedKey(key: string): void {
    if (this.bus !== undefined) this.changed([key]);
  }

  /** Whether the bus is up: every invalidation of another instance reaches this one at once. */
  get isUp(): boolean {
    return this.bus?.isUp === true;
  }

  /** This instance invalidated tags: tell the others. */
  tagsInvalidated(list: readonly TagInvalidation[]): void {
    this.announcing()?.tagsInvalidated(list);
  }

  /** The bus, started if it was not yet (what is announced before then waits for it). */
  private announcing(): InvalidationBus | undefined {
    if (this.bus !== undefined && this.starting === undefined)
      void this.start().catch(() => undefined);
    return this.bus;
  }

  /** This instance cleared the namespace, now at `generation`: tell the others. */
  cleared(generation: number): void {
    this.bus?.cleared(generation);
  }

  stats(): BusStats | undefined {
    return this.starting === undefined ? undefined : this.bus?.stats();
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.starting?.catch(() => undefined);
    await this.bus?.close();
  }

  /** Drops another instance's keys from the local tiers (and moves to its generation). */
  private apply(m: InvalidationMessage): void {
    const { keys, mutations } = this.setup;
    const callerKeys: string[] = [];
    const finals: string[] = [];
    for (const key of m.keys) {
      let k: string;
      try {
        k = keys.build(key);
      } catch {
        continue; // not a key this store could have stored
      }
      // Reads in flight must not backfill the value they read before this.
      mutations.mutated(k);
      callerKeys.push(key);
      finals.push(k);
    }
    if (finals.length > 0) {
      for (const slot of this.local) {
        const at = callerKeys.map((key, i) => slot.keyFor(key, finals[i]));
        // In write order: after a backfill of the key already under way there.
        void slot.remove('bus invalidate', undefined, at);
      }
    }
    if (m.generation !== undefined) this.setup.generation.adopt(m.generation);
    if (m.tags !== undefined) this.setup.tags.learn(m.tags);
    if (this.setup.listening())
      this.setup.emit({
        type: 'invalidated',
        message: `${m.keys.length} key(s)${m.tags ? `, ${m.tags.length} tag(s)` : ''} from instance ${m.from}`,
        invalidation: m,
      });
  }

  /** Forgets everything local: something may have been missed. */
  private flush(type: 'gap' | 'up' | 'down', reason: string): void {
    this.setup.mutations.startOver();
    this.setup.tags.forget();
    for (const slot of this.local) {
      if (slot.local) (slot.tier as LocalTier).clear();
      else slot.distrust();
    }
    const what =
      type === 'gap'
        ? 'a missed invalidation'
        : type === 'down'
          ? 'the bus is down'
          : this.wasUp
            ? 'the bus is back'
            : 'what they took in before the bus was up';
    if (type === 'up') this.wasUp = true;
    this.setup.emit({
      type,
      message: `invalidation bus: ${reason}; local tiers flushed (${what})`,
    });
  }

  /** Caps new local entries at `degradedTtl` (`on`), or lifts that cap. */
  private degrade(on: boolean): void {
    if (this.config === undefined) return;
    const ttl = this.config.degradedTtl;
    for (const slot of this.local)
      slot.degradedCap = on ? (slot.cap > 0 ? Math.min(slot.cap, ttl) : ttl) : 0;
  }
}
