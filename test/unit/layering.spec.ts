import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import ts from 'typescript';

/**
 * The layering of lib/ (see the README's Layout): lower layers never import upper ones, the
 * store and the herd engine know tiers only through their contract, and only lib/nest/ knows
 * NestJS. lib/telemetry/ (metrics, tracing) sits beside lib/nest/: it reads the store, the herd
 * engine and the bus (and the foundations), never a tier or lib/nest/, and no layer below it
 * imports it. Specifiers are read by TypeScript's own pre-processor (static imports,
 * `import type`, `export … from`, `import()` and `require()`), resolved to paths relative to
 * lib/.
 */

/** One source file, `path` relative to lib/ with forward slashes (e.g. `store/tiered-store.ts`). */
interface SourceFile {
  path: string;
  text: string;
}

interface Violation {
  file: string;
  /** The specifier as written, or the line count for the size rule. */
  specifier: string;
  rule: string;
}

const MAX_LINES = 450;

/** What lib/store/ may take from lib/tiers/: the contract, the options and the factory. */
const STORE_MAY_IMPORT_FROM_TIERS = new Set([
  'tiers/tier.interface.ts',
  'tiers/tier-options.ts',
  'tiers/create-tier.ts',
]);

/** The foundations: they import nothing from the layers above them. */
const FOUNDATIONS = ['serialization/', 'keys/', 'errors.ts', 'options.ts', 'clock.ts'];

/** A concrete tier: a backend's folder (or a backend class file left at the top of lib/tiers/). */
function isConcreteTier(target: string): boolean {
  return (
    /^tiers\/(memory|memcached|cassandra)\//.test(target) || /^tiers\/[^/]+\.tier\.ts$/.test(target)
  );
}

/** Whether `path` lies in `folder` (`store` or `store/`). */
function inside(path: string, folder: string): boolean {
  return path.startsWith(folder.endsWith('/') ? folder : `${folder}/`);
}

const UPPER_LAYERS = ['tiers/', 'bus/', 'store/', 'herd/', 'nest/', 'telemetry/'];

/** The layers below lib/telemetry/ (it reads all but the tiers): none of them imports it. */
const OBSERVED_LAYERS = ['tiers', 'bus', 'store', 'herd'];

/**
 * Where a relative specifier of `from` points, relative to lib/: the `.ts` file, or the folder's
 * `index.ts`, whichever `exists` (else the `.ts` guess). `undefined` for a package.
 */
function resolve(
  from: string,
  specifier: string,
  exists: (path: string) => boolean,
): string | undefined {
  if (!specifier.startsWith('.')) return undefined;
  const joined = posix.normalize(posix.join(posix.dirname(from), specifier));
  const bare = joined.replace(/\.(js|ts)$/, '');
  const candidates = [`${bare}.ts`, `${bare}/index.ts`];
  return candidates.find(exists) ?? candidates[0];
}

/** The package a bare specifier names (`@scope/name` or `name`). */
function packageOf(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

/** The rules one import of `file` breaks. `target` is its path relative to lib/ (relative imports). */
function rulesBroken(file: string, specifier: string, target: string | undefined): string[] {
  const broken: string[] = [];
  if (target === undefined) {
    if (packageOf(specifier).startsWith('@nestjs/') && !inside(file, 'nest'))
      broken.push('only lib/nest/ imports @nestjs/*');
    return broken;
  }
  if (inside(file, 'tiers')) {
    for (const upper of ['store', 'herd', 'nest'])
      if (inside(target, upper)) broken.push(`lib/tiers/ imports nothing from lib/${upper}/`);
  }
  if (inside(file, 'bus')) {
    for (const upper of ['tiers', 'store', 'herd', 'nest'])
      if (inside(target, upper)) broken.push(`lib/bus/ imports nothing from lib/${upper}/`);
  }
  if (inside(file, 'store') && inside(target, 'tiers')) {
    if (isConcreteTier(target)) broken.push('lib/store/ imports no concrete tier');
    else if (!STORE_MAY_IMPORT_FROM_TIERS.has(target))
      broken.push(
        `lib/store/ takes only ${[...STORE_MAY_IMPORT_FROM_TIERS].map((t) => `lib/${t}`).join(', ')} from lib/tiers/`,
      );
  }
  if (inside(file, 'herd')) {
    if (isConcreteTier(target)) broken.push('lib/herd/ imports no concrete tier');
    if (inside(target, 'nest')) broken.push('lib/herd/ imports nothing from lib/nest/');
    if (target === 'store/tiered-store.ts')
      broken.push('lib/herd/ does not import the TieredStore class (lib/store/tiered-store.ts)');
  }
  if (inside(file, 'telemetry')) {
    for (const upper of ['tiers', 'nest'])
      if (inside(target, upper)) broken.push(`lib/telemetry/ imports nothing from lib/${upper}/`);
  }
  const observed = OBSERVED_LAYERS.find((layer) => inside(file, layer));
  if (observed !== undefined && inside(target, 'telemetry'))
    broken.push(`lib/${observed}/ imports nothing from lib/telemetry/`);
  const foundation = FOUNDATIONS.find((f) => (f.endsWith('/') ? inside(file, f) : file === f));
  if (foundation !== undefined) {
    const upper = UPPER_LAYERS.find((u) => inside(target, u));
    const allowed = foundation === 'keys/' && target === 'tiers/tier.interface.ts';
    if (upper !== undefined && !allowed)
      broken.push(`lib/${foundation} imports nothing from lib/${upper}`);
  }
  return broken;
}

function lineCount(text: string): number {
  if (text === '') return 0;
  const lines = text.split('\n').length;
  return text.endsWith('\n') ? lines - 1 : lines;
}

/** Every layering violation in `files`, file by file. */
function checkLayering(files: readonly SourceFile[]): Violation[] {
  const paths = new Set(files.map((f) => f.path));
  const exists = (p: string) => paths.has(p);
  const violations: Violation[] = [];
  for (const { path, text } of files) {
    const lines = lineCount(text);
    if (lines > MAX_LINES)
      violations.push({
        file: path,
        specifier: `${lines} lines`,
        rule: `no file in lib/ has more than ${MAX_LINES} lines`,
      });
    const { importedFiles } = ts.preProcessFile(text, true, true);
    for (const { fileName: specifier } of importedFiles) {
      const target = resolve(path, specifier, exists);
      for (const rule of rulesBroken(path, specifier, target))
        violations.push({ file: path, specifier, rule });
    }
  }
  return violations;
}

function format(v: Violation): string {
  return `lib/${v.file}: ${JSON.stringify(v.specifier)}: ${v.rule}`;
}

/** Every lib/**\/*.ts file, paths relative to lib/. */
function readLib(root: string): SourceFile[] {
  const out: SourceFile[] = [];
  const walk = (dir: string, rel: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const relPath = rel === '' ? entry.name : `${rel}/${entry.name}`;
      if (entry.isDirectory()) walk(join(dir, entry.name), relPath);
      else if (entry.name.endsWith('.ts'))
        out.push({ path: relPath, text: readFileSync(join(dir, entry.name), 'utf8') });
    }
  };
  walk(root, '');
  return out.sort((a, b) => a.path.localeCompare(b.path));
}

/** Jest runs from the repository root (as test/support/herd-processes.ts assumes too). */
const LIB = join(process.cwd(), 'lib');

describe('layering of lib/', () => {
  it('finds the sources', () => {
    expect(existsSync(join(LIB, 'index.ts'))).toBe(true);
    expect(readLib(LIB).length).toBeGreaterThan(10);
  });

  it('keeps every layer to what it may import, and every file to 450 lines', () => {
    expect(checkLayering(readLib(LIB)).map(format)).toEqual([]);
  });
});

describe('the layering checker', () => {
  const file = (path: string, ...specifiers: string[]): SourceFile => ({
    path,
    text: specifiers.map((s, i) => `import { x${i} } from '${s}';\n`).join(''),
  });

  // Each case: fake files, and the violations (formatted) the checker must report.
  const cases: Array<[string, SourceFile[], string[]]> = [
    [
      'a tier importing the store',
      [file('tiers/memory/memory.tier.ts', '../../store/tiered-store', '../tier.interface')],
      [
        'lib/tiers/memory/memory.tier.ts: "../../store/tiered-store": lib/tiers/ imports nothing from lib/store/',
      ],
    ],
    [
      'the bus importing the store',
      [file('bus/invalidation-bus.ts', '../store/tier-slot', '../options')],
      [
        'lib/bus/invalidation-bus.ts: "../store/tier-slot": lib/bus/ imports nothing from lib/store/',
      ],
    ],
    [
      'a tier importing herd and nest',
      [file('tiers/create-tier.ts', '../herd/lease', '../nest/tiered-cache.module')],
      [
        'lib/tiers/create-tier.ts: "../herd/lease": lib/tiers/ imports nothing from lib/herd/',
        'lib/tiers/create-tier.ts: "../nest/tiered-cache.module": lib/tiers/ imports nothing from lib/nest/',
      ],
    ],
    [
      'the store importing a concrete tier (also through export … from and import())',
      [
        {
          path: 'store/tiered-store.ts',
          text: [
            "import type { Tier } from '../tiers/tier.interface';",
            "import { createTier } from '../tiers/create-tier';",
            "export { MemcachedTier } from '../tiers/memcached/memcached.tier';",
            "const lazy = () => import('../tiers/cassandra/cassandra.tier');",
            "import { MemoryTier } from '../tiers/memory/memory.tier';",
          ].join('\n'),
        },
      ],
      [
        'lib/store/tiered-store.ts: "../tiers/memcached/memcached.tier": lib/store/ imports no concrete tier',
        'lib/store/tiered-store.ts: "../tiers/cassandra/cassandra.tier": lib/store/ imports no concrete tier',
        'lib/store/tiered-store.ts: "../tiers/memory/memory.tier": lib/store/ imports no concrete tier',
      ],
    ],
    [
      'the store importing another tiers/ file, or a backend file left at the top of tiers/',
      [
        file(
          'store/slot.ts',
          '../tiers/host-port',
          '../tiers/memcached.tier',
          '../tiers/tier-options',
        ),
      ],
      [
        'lib/store/slot.ts: "../tiers/host-port": lib/store/ takes only lib/tiers/tier.interface.ts, lib/tiers/tier-options.ts, lib/tiers/create-tier.ts from lib/tiers/',
        'lib/store/slot.ts: "../tiers/memcached.tier": lib/store/ imports no concrete tier',
      ],
    ],
    [
      'herd importing a concrete tier, nest or the TieredStore class',
      [
        file(
          'herd/read-through.ts',
          '../tiers/memory/memory.tier',
          '../nest/constants',
          '../store/tiered-store',
          '../store/stored-entry',
          '../tiers/tier.interface',
        ),
      ],
      [
        'lib/herd/read-through.ts: "../tiers/memory/memory.tier": lib/herd/ imports no concrete tier',
        'lib/herd/read-through.ts: "../nest/constants": lib/herd/ imports nothing from lib/nest/',
        'lib/herd/read-through.ts: "../store/tiered-store": lib/herd/ does not import the TieredStore class (lib/store/tiered-store.ts)',
      ],
    ],
    [
      '@nestjs/* outside lib/nest/',
      [
        file('store/keyv-adapter.ts', '@nestjs/common', 'keyv'),
        file('index.ts', '@nestjs/core/injector'),
        file('nest/tiered-cache.module.ts', '@nestjs/common', '@nestjs/cache-manager'),
      ],
      [
        'lib/store/keyv-adapter.ts: "@nestjs/common": only lib/nest/ imports @nestjs/*',
        'lib/index.ts: "@nestjs/core/injector": only lib/nest/ imports @nestjs/*',
      ],
    ],
    [
      'a foundation importing an upper layer',
      [
        file('serialization/codec.ts', '../store/entry'),
        file('keys/key-builder.ts', '../tiers/tier.interface', '../tiers/memcached/protocol'),
        file('errors.ts', './herd/single-flight'),
        file('options.ts', './tiers/host-port'),
        file('clock.ts', './nest/tiered-cache.module'),
      ],
      [
        'lib/serialization/codec.ts: "../store/entry": lib/serialization/ imports nothing from lib/store/',
        'lib/keys/key-builder.ts: "../tiers/memcached/protocol": lib/keys/ imports nothing from lib/tiers/',
        'lib/errors.ts: "./herd/single-flight": lib/errors.ts imports nothing from lib/herd/',
        'lib/options.ts: "./tiers/host-port": lib/options.ts imports nothing from lib/tiers/',
        'lib/clock.ts: "./nest/tiered-cache.module": lib/clock.ts imports nothing from lib/nest/',
      ],
    ],
    [
      'telemetry importing a tier or nest, and the layers it reads importing telemetry',
      [
        file(
          'telemetry/prometheus.ts',
          '../store/tiered-store',
          '../herd/read-through',
          '../bus/invalidation-bus',
          '../options',
          '../tiers/memory/memory.tier',
          '../tiers/tier.interface',
          '../nest/tiered-cache.options',
          'prom-client',
        ),
        file('store/tiered-store.ts', '../telemetry/prometheus'),
        file('herd/read-through.ts', '../telemetry/tracing'),
        file('bus/invalidation-bus.ts', '../telemetry/prometheus'),
        file('tiers/memcached/memcached.tier.ts', '../../telemetry/prometheus'),
        file('nest/tiered-cache.service.ts', '../telemetry/prometheus', '../telemetry/tracing'),
        file('options.ts', './telemetry/metrics.options'),
      ],
      [
        'lib/telemetry/prometheus.ts: "../tiers/memory/memory.tier": lib/telemetry/ imports nothing from lib/tiers/',
        'lib/telemetry/prometheus.ts: "../tiers/tier.interface": lib/telemetry/ imports nothing from lib/tiers/',
        'lib/telemetry/prometheus.ts: "../nest/tiered-cache.options": lib/telemetry/ imports nothing from lib/nest/',
        'lib/store/tiered-store.ts: "../telemetry/prometheus": lib/store/ imports nothing from lib/telemetry/',
        'lib/herd/read-through.ts: "../telemetry/tracing": lib/herd/ imports nothing from lib/telemetry/',
        'lib/bus/invalidation-bus.ts: "../telemetry/prometheus": lib/bus/ imports nothing from lib/telemetry/',
        'lib/tiers/memcached/memcached.tier.ts: "../../telemetry/prometheus": lib/tiers/ imports nothing from lib/telemetry/',
        'lib/options.ts: "./telemetry/metrics.options": lib/options.ts imports nothing from lib/telemetry/',
      ],
    ],
    [
      'a folder import resolved to its index.ts',
      [file('tiers/memcached/topology.ts', '../../store'), { path: 'store/index.ts', text: '' }],
      [
        'lib/tiers/memcached/topology.ts: "../../store": lib/tiers/ imports nothing from lib/store/',
      ],
    ],
    [
      'a file over 450 lines (450 is fine)',
      [
        { path: 'store/big.ts', text: 'const a = 1;\n'.repeat(451) },
        { path: 'store/fits.ts', text: 'const a = 1;\n'.repeat(450) },
      ],
      ['lib/store/big.ts: "451 lines": no file in lib/ has more than 450 lines'],
    ],
    [
      'a clean tree',
      [
        file('tiers/memcached/memcached.tier.ts', '../tier.interface', '../../errors', 'memjs'),
        file('store/tiered-store.ts', '../tiers/create-tier', '../keys/key-builder', 'keyv'),
        file('herd/read-through.ts', './single-flight', '../store/lease-store', '../clock'),
        file('keys/key-builder.ts', '../tiers/tier.interface', '../errors'),
        file('nest/tiered-cache.module.ts', '@nestjs/common', '../store/tiered-store'),
      ],
      [],
    ],
  ];

  it.each(cases)('reports %s', (_name, files, expected) => {
    expect(checkLayering(files).map(format)).toEqual(expected);
  });
});
