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
      () => CacheEvict({} as never),
      '@CacheEvict().keys: must be a string, a list or a function, got undefined',
    ],
  ])('%# rejects invalid options with an InvalidOptionError naming them', (apply, message) => {
    expect(apply).toThrow(InvalidOptionError);
    expect(apply).toThrow(message);
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
