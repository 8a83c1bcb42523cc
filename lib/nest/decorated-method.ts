import type { ExecutionContext } from '@nestjs/common';
import type { Observable } from 'rxjs';

/**
 * The methods `@Cached()` and `@CacheEvict()` decorate, and what their key and tags functions
 * see: a provider method's see the method's arguments, a controller handler's see the request
 * (and, for `@Cached()`, the `ExecutionContext`).
 */

/**
 * The parts of an HTTP request that the interceptor and handler keys read; Express's `Request`
 * and Fastify's `FastifyRequest` both have them. A key function may declare its request parameter
 * as this type or as the platform's own request type.
 */
export interface CacheableRequest {
  /** The HTTP method, e.g. `GET`. */
  method: string;
  /** The request URL: path and query string. */
  url: string;
  /** The request headers, names in lower case. */
  headers: Record<string, string | string[] | undefined>;
  /** The route parameters, e.g. `id` for `@Get(':id')`. */
  params: Record<string, string>;
  /** The parsed query string. */
  query: Record<string, unknown>;
}

/** The arguments of a controller handler's `@Cached({ key })` and `@Cached({ tags })` functions. */
export type CachedHandlerArgs = [request: CacheableRequest, context: ExecutionContext];

/** A controller handler's `@Cached({ key })` function. */
export type CachedHandlerKey = (...args: CachedHandlerArgs) => string;

/** A controller handler's `@Cached({ tags })` function. */
export type CachedHandlerTags = (...args: CachedHandlerArgs) => readonly string[];

/** A controller handler's `@Cached({ condition })` function: the result, then the request. */
export type CachedHandlerCondition<Result = unknown> = (
  result: Result,
  request: CacheableRequest,
) => boolean;

/** The arguments of a controller handler's `@CacheEvict({ keys })` and `@CacheEvict({ tags })` functions. */
export type CacheEvictHandlerArgs = [request: CacheableRequest];

/** A controller handler's `@CacheEvict({ keys })` function. */
export type CacheEvictHandlerKeys = (...args: CacheEvictHandlerArgs) => string | string[];

/** A controller handler's `@CacheEvict({ tags })` function. */
export type CacheEvictHandlerTags = (...args: CacheEvictHandlerArgs) => readonly string[];

/**
 * Whether key (or tags) arguments `Args` are a handler's: the first one is a request (it has
 * `headers`). Any other key function is a provider method's.
 */
type IsHandler<Args extends unknown[]> = Args extends [infer Request, ...unknown[]]
  ? Request extends { headers: unknown }
    ? true
    : false
  : false;

/**
 * What a `condition` is called with after the result: the method's arguments, or for a handler
 * the request alone.
 */
export type ConditionArgs<Args extends unknown[]> =
  IsHandler<Args> extends true ? [request: Args[0]] : Args;

/** A type error naming what does not match; intersected with the descriptor, it fails the decorator. */
type Mismatch<Problem extends string> = { [P in Problem]: never };

/**
 * Checks that a key or tags function taking `Args` accepts `Given`, the arguments it is called
 * with (it may take fewer).
 */
type ArgsCheck<Given, Args extends unknown[], Problem extends string> = Given extends [
  ...Args,
  ...unknown[],
]
  ? unknown
  : Mismatch<Problem>;

/** The arguments after the first. */
type Tail<T extends unknown[]> = T extends [unknown, ...infer Rest] ? Rest : [];

/**
 * What a decorated method may return when `condition` expects a `Result`: a handler may also
 * return an Observable (the interceptor caches its last value).
 */
type Returns<Args extends unknown[], Result> = Args extends [unknown, ...unknown[]]
  ? IsHandler<Args> extends true
    ? Result | PromiseLike<Result> | Observable<Result>
    : Result | PromiseLike<Result>
  : Result | PromiseLike<Result> | Observable<Result>;

/**
 * Checks a decorated method of type `M` against key (and tags) arguments `Args` and result
 * `Result`; a handler's are checked against `HandlerArgs` instead (its request parameter may have
 * any type).
 */
type DecoratedCheck<M, Args extends unknown[], Result, HandlerArgs extends unknown[]> = M extends (
  ...args: infer Params
) => infer Returned
  ? [Returned] extends [Returns<Args, Result>]
    ? IsHandler<Args> extends true
      ? ArgsCheck<
          Tail<HandlerArgs>,
          Tail<Args>,
          "the key or tags function's parameters after the request do not accept the handler's"
        >
      : ArgsCheck<
          Params,
          Args,
          "the key or tags function's parameters do not accept the method's arguments"
        >
    : Mismatch<"the decorated method's result does not match the condition's result parameter">
  : Mismatch<'only methods can be decorated'>;

/**
 * The method decorator `@Cached()` and `@CacheEvict()` return. When their key or tags function
 * types its parameters, TypeScript checks them against the decorated provider method's (the
 * function may take fewer). A function whose first parameter is a request (it has `headers`) is a
 * handler's: the rest of its parameters are checked against `HandlerArgs` (`CachedHandlerArgs`
 * for `@Cached()`, `CacheEvictHandlerArgs` for `@CacheEvict()`), and the handler's own parameters
 * (`@Param()`, `@Query()`, …) are not checked.
 */
export type CacheDecorator<
  Args extends unknown[] = unknown[],
  Result = unknown,
  HandlerArgs extends unknown[] = CachedHandlerArgs,
> = <M>(
  target: object,
  propertyKey: string | symbol,
  descriptor: TypedPropertyDescriptor<M> & DecoratedCheck<M, Args, Result, HandlerArgs>,
) => void;
