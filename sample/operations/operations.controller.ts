import { Controller, Get, Header } from '@nestjs/common';
import { HealthCheck, HealthCheckService, type HealthCheckResult } from '@nestjs/terminus';
import { register } from 'prom-client';
import { TieredCacheHealthIndicator } from '../../lib';

/** What an operator (or Kubernetes, or Prometheus) asks the app. */
@Controller()
export class OperationsController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly cache: TieredCacheHealthIndicator,
  ) {}

  /**
   * The cache's tiers and invalidation bus. 503 only when no tier can answer: memcached or
   * Cassandra down leaves the app serving (from the tiers left, and the database), so the cache
   * reports `degraded` (200). Pass `require` to make tiers the app cannot do without fail it,
   * e.g. `isHealthy('cache', { require: ['memcached'] })`.
   */
  @Get('health')
  @HealthCheck()
  check(): Promise<HealthCheckResult> {
    return this.health.check([() => this.cache.isHealthy('cache')]);
  }

  /** Prometheus' default registry, in its text format. */
  @Get('metrics')
  @Header('Content-Type', register.contentType)
  metrics(): Promise<string> {
    return register.metrics();
  }
}
