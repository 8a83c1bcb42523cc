import 'reflect-metadata';
import { Controller, Get, Module, Param } from '@nestjs/common';
import { Cached, TieredCacheModule } from '../lib';
import { serveApp } from './http-apps';

/**
 * The app of `http-304.bench.ts`, in a process of its own: a Nest Express app whose `@Cached`
 * handler serves `GET /doc/:id`, about 10 KB of JSON, cached for 10 minutes over a memory tier.
 * Sends its port to the parent, then waits for `close`.
 */
const TTL = 10 * 60_000;

/** About 10 KB of JSON. */
function doc(id: string) {
  return {
    id,
    title: `Document ${id}`,
    sections: Array.from({ length: 40 }, (_, i) => ({
      heading: `Section ${i}`,
      body: 'lorem ipsum dolor sit amet '.repeat(8),
      order: i,
    })),
  };
}

@Controller('doc')
class DocsController {
  @Get(':id')
  @Cached({ ttl: TTL })
  find(@Param('id') id: string) {
    return doc(id);
  }
}

@Module({
  imports: [TieredCacheModule.forRoot({ tiers: [{ type: 'memory' }], ttl: TTL, logErrors: false })],
  controllers: [DocsController],
})
class DocsApp {}

serveApp(DocsApp);
