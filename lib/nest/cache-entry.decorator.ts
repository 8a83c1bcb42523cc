import { createParamDecorator, type ExecutionContext } from '@nestjs/common';
import { EntryContext, type CacheEntryContext } from '../herd/entry-context';

/** The entry context of each request whose `@Cached()` handler is being computed. */
const contexts = new WeakMap<object, CacheEntryContext>();

/**
 * Gives `request`'s handler the entry context of the computation it runs in (the interceptor
 * calls it before running a `@Cached()` handler on a miss).
 * @internal
 */
export function bindEntryContext(request: object, context: CacheEntryContext): void {
  contexts.set(request, context);
}

/**
 * A `@Cached()` handler's parameter: the context of the entry it computes (see
 * `CacheEntryContext`): set the entry's TTL, grace and tags from the response, skip storing it,
 * read the stale value being refreshed. When the handler runs without being cached (the request
 * is bypassed, or the handler has no `@Cached()`), a context whose settings change nothing.
 *
 * @example
 * ```ts
 * @Get(':id') @Cached({ ttl: 60_000 })
 * async product(@Param('id') id: string, @CacheEntry() entry: CacheEntryContext<Product>) {
 *   const product = await this.products.find(id);
 *   if (product.discontinued) entry.setTtl(3_600_000);
 *   return product;
 * }
 * ```
 */
export const CacheEntry = createParamDecorator(
  (_data: unknown, context: ExecutionContext): CacheEntryContext => {
    const request = context.switchToHttp().getRequest<object>();
    return contexts.get(request) ?? new EntryContext(undefined);
  },
);
