import 'reflect-metadata';
import type { ExecutionContext } from '@nestjs/common';
import {
  CACHED_METADATA,
  CacheEvict,
  Cached,
  type CacheableRequest,
  type CachedHandlerArgs,
} from '../../lib';
import { InvalidOptionError } from '../../lib/errors';
import { callTags } from '../../lib/nest/cached-call';

describe('@Cached() and @CacheEvict() options', () => {
  it.each([
    [() => Cached({ ttl: -1 }), '@Cached().ttl: -1 is not a number of milliseconds >= 0'],
    [
      () => Cached({ authorized: true }),
      '@Cached().authorized: true needs a key function that includes the caller identity',
    ],
    [() => Cached({ lockTimeout: -5 }), '@Cached().lockTimeout: -5'],
    [() => Cached(null as never), '@Cached(): must be an object, got null'],
    [
      () => Cached({ tags: 'x' as never }),
      '@Cached().tags: must be a list of strings or a function, got string',
    ],
    [() => Cached({ tags: [''] }), '@Cached().tags[0]: must not be empty'],
    [() => Cached({ tags: ['a', 7] as never }), '@Cached().tags[1]: must be a string, got number'],
    [
      () => Cached({ tags: Array.from({ length: 65 }, (_, i) => `t${i}`) }),
      '@Cached().tags: 65 tags, at most 64 per entry',
    ],
    [() => Cached({ tag: ['a'] } as never), '@Cached().tag: unknown option (did you mean "tags"?)'],
    [() => CacheEvict({}), '@CacheEvict(): needs keys, tags or both, got neither'],
    [() => CacheEvict(undefined as never), '@CacheEvict(): needs keys, tags or both, got neither'],
    [() => CacheEvict(null as never), '@CacheEvict(): must be an object, got null'],
    [
      () => CacheEvict({ keys: 5 as never }),
      '@CacheEvict().keys: must be a string, a list or a function, got number',
    ],
    [
      () => CacheEvict({ tags: 'x' as never }),
      '@CacheEvict().tags: must be a list of strings or a function, got string',
    ],
    [() => CacheEvict({ tags: ['ok', ''] }), '@CacheEvict().tags[1]: must not be empty'],
    [
      () => CacheEvict({ tags: ['a'], mode: 'remove' as never }),
      `@CacheEvict().mode: must be 'delete' or 'expire', got "remove"`,
    ],
    [
      () => CacheEvict({ keys: 'a', mode: 'expire' }),
      '@CacheEvict().mode: applies to tags, and there are none',
    ],
    [
      () => CacheEvict({ keys: 'a', tag: ['x'] } as never),
      '@CacheEvict().tag: unknown option (did you mean "tags"?)',
    ],
  ])('%# rejects invalid options with an InvalidOptionError naming them', (apply, message) => {
    expect(apply).toThrow(InvalidOptionError);
    expect(apply).toThrow(message);
  });

  it('accepts tags as a list or a function, and keys, tags or both on @CacheEvict', () => {
    expect(() => Cached({ tags: ['products', 'product:1'] })).not.toThrow();
    expect(() => Cached({ tags: [] })).not.toThrow();
    expect(() => Cached({ tags: (id: number) => [`product:${id}`] })).not.toThrow();
    expect(() => CacheEvict({ tags: ['products'] })).not.toThrow();
    expect(() => CacheEvict({ tags: () => ['products'], mode: 'expire' })).not.toThrow();
    expect(() => CacheEvict({ keys: 'a', tags: ['products'], mode: 'delete' })).not.toThrow();
  });

  it("checks a tags function's result per call, naming the option", () => {
    const args = [7];
    const bad = (result: unknown) => () => callTags('@Cached().tags', () => result as never, args);
    expect(bad('product:7')).toThrow(InvalidOptionError);
    expect(bad('product:7')).toThrow('@Cached().tags(): must be a list of strings, got string');
    expect(bad(undefined)).toThrow('@Cached().tags(): must be a list of strings, got undefined');
    expect(bad(['ok', ''])).toThrow('@Cached().tags()[1]: must not be empty');
    expect(callTags('@Cached().tags', (id: unknown) => [`p:${String(id)}`, 'p'], args)).toEqual([
      'p:7',
      'p',
    ]);
    expect(callTags('@Cached().tags', () => [], args)).toBeUndefined();
    expect(callTags('@Cached().tags', undefined, args)).toBeUndefined();
    expect(callTags('@Cached().tags', ['a', 'a'], args)).toEqual(['a']);
  });

  it('only sets metadata', () => {
    const options = { key: (id: number) => `p:${id}`, ttl: 1000 };
    class Service {
      @Cached(options)
      find(id: number) {
        return id;
      }
    }
    expect(Reflect.getMetadata(CACHED_METADATA, Service.prototype.find)).toBe(options);
  });
});

// Compile-time checks: ts-jest type-checks this file, so a decorator that stops catching one of
// these (or starts refusing a valid one) fails the suite.
class ProviderMethods {
  @Cached({ key: (id: number) => `p:${id}`, condition: (p: { id: number } | null) => p !== null })
  find(id: number): Promise<{ id: number; price: number } | null> {
    return Promise.resolve({ id, price: 1 });
  }

  @CacheEvict({ keys: (id: number) => [`p:${id}`] })
  update(id: number, _changes: { price: number }): Promise<number> {
    return Promise.resolve(id);
  }

  @Cached({ key: (id: number) => `p:${id}`, tags: (id) => [`product:${id.toFixed(0)}`] })
  tagged(id: number): number {
    return id;
  }

  @CacheEvict({ tags: (id: number) => [`product:${id}`], mode: 'expire' })
  expire(id: number): number {
    return id;
  }

  // @ts-expect-error the tags function takes a string, the method a number
  @Cached({ tags: (id: string) => [id] })
  wrongTags(id: number): number {
    return id;
  }

  // @ts-expect-error the tags function wants an argument the method is never called with
  @CacheEvict({ tags: (id: number, more: string) => [`${id}${more}`] })
  tooManyTagsParameters(id: number): number {
    return id;
  }

  @Cached({
    // @ts-expect-error a tags function returns a list of strings
    tags: (id: number) => `product:${id}`,
  })
  tagsNotAList(id: number): number {
    return id;
  }

  // @ts-expect-error the key takes a string, the method a number
  @Cached({ key: (id: string) => `p:${id}` })
  wrongKey(id: number): number {
    return id;
  }

  // @ts-expect-error the key wants a second argument the method is never called with
  @CacheEvict({ keys: (id: number, more: string) => `p:${id}${more}` })
  tooManyKeyParameters(id: number): number {
    return id;
  }

  // @ts-expect-error the condition expects a result the method does not return
  @Cached({ condition: (p: { id: number }) => p.id > 0 })
  wrongResult(id: number): Promise<string> {
    return Promise.resolve(String(id));
  }
}

class Handlers {
  @Cached({ key: (request: CacheableRequest) => `p:${request.params.id}` })
  one(id: string): string {
    return id;
  }

  @Cached<CachedHandlerArgs>({
    key: (request, context) => `${context.getType()}:${request.params.id}`,
    condition: (_result, request) => request.method === 'GET',
  })
  two(id: string): string {
    return id;
  }

  @CacheEvict({ keys: (request: CacheableRequest) => `p:${request.params.id}` })
  touch(): void {}

  @Cached({ tags: (request: CacheableRequest) => [`product:${request.params.id}`] })
  tagged(id: string): string {
    return id;
  }

  @Cached<CachedHandlerArgs>({
    tags: (request, context) => [context.getClass().name, `product:${request.params.id}`],
  })
  taggedWithContext(id: string): string {
    return id;
  }

  @CacheEvict({ tags: (request: CacheableRequest) => [`product:${request.params.id}`] })
  retag(): void {}

  // @ts-expect-error @CacheEvict calls a handler's tags with the request alone
  @CacheEvict({ tags: (r: CacheableRequest, c: ExecutionContext) => [c.getType(), r.url] })
  retagWithContext(): void {}

  // @ts-expect-error a handler key's second parameter is the ExecutionContext
  @Cached({ key: (request: CacheableRequest, context: string) => `${context}${request.url}` })
  wrongContext(id: string): string {
    return id;
  }

  // @ts-expect-error @CacheEvict calls a handler's keys with the request alone
  @CacheEvict({ keys: (r: CacheableRequest, c: ExecutionContext) => `${c.getType()}${r.url}` })
  evictWithContext(): void {}
}

// Only type-checked.
void [ProviderMethods, Handlers];
