import type { HerdOptions } from '../herd/herd.options';
import type { TieredStoreOptions } from '../store/tiered-store.options';

/** Options of `TieredCacheModule.forRoot()` / `forRootAsync()`: the tier engine's, plus module settings. */
export interface TieredCacheModuleOptions extends TieredStoreOptions {
  /**
   * `false`: an unreachable remote tier does not stop the app; it is logged once (Nest `Logger`,
   * warning), marked down and retried by its circuit breaker. `true`: bootstrap fails with the
   * first tier that cannot connect.
   * @default false
   */
  failFast?: boolean;
  /**
   * Log tier errors through Nest's `Logger` (warning level, at most one line per tier every
   * 10 s, with the count of errors since the last line).
   * @default true
   */
  logErrors?: boolean;
  /**
   * Defaults of the herd settings of `getOrSet` and `@Cached()` (`grace`, `lockTimeout`,
   * `earlyRefresh`, `timeout`, `hardTimeout`); each call or decorator may override them.
   * @default the defaults of each `HerdOptions` field
   */
  herd?: HerdOptions;
}

/** Options of `forRoot()` / `register()`: the module's options plus `isGlobal`. */
export type TieredCacheModuleRootOptions = TieredCacheModuleOptions & {
  /**
   * Make the module global: its providers can be injected in every module without importing it.
   * @default false
   */
  isGlobal?: boolean;
};
