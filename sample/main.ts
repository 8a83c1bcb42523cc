import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { collectDefaultMetrics } from 'prom-client';
import { AppModule } from './app.module';

async function bootstrap(): Promise<void> {
  // The process's own metrics (CPU, memory, event loop lag), beside the cache's, on /metrics.
  collectDefaultMetrics();
  const app = await NestFactory.create(AppModule);
  app.enableShutdownHooks();
  const port = Number(process.env.PORT ?? 3000);
  await app.listen(port, '127.0.0.1');
  Logger.log(
    `product catalogue on http://127.0.0.1:${port}/products (also /health and /metrics)`,
    'Sample',
  );
}

void bootstrap();
