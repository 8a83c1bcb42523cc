import { ClusterConfigError } from '../../lib/errors';
import {
  parseClusterConfig,
  scanClusterReply,
} from '../../lib/tiers/memcached/discovery/cluster-config';
import { ElastiCacheDiscovery } from '../../lib/tiers/memcached/discovery/elasticache-discovery';
import { MemcachedTier } from '../../lib/tiers/memcached/memcached.tier';
import type { MemcachedTierOptions } from '../../lib/tiers/memcached/memcached.options';

// Replies in the exact shape AWS documents for a 1.4.14+ configuration endpoint and for older
// engines (`get AmazonElastiCache:cluster`).
const PAYLOAD =
  '12\n' +
  'mycluster.fnjyzo.cfg.0001.use1.cache.amazonaws.com|10.82.235.120|11211 ' +
  'mycluster.fnjyzo.cfg.0002.use1.cache.amazonaws.com|10.80.249.27|11211\n';
const CONFIG_REPLY = `CONFIG cluster 0 ${PAYLOAD.length}\r\n${PAYLOAD}\r\nEND\r\n`;
const LEGACY_REPLY = `VALUE AmazonElastiCache:cluster 0 ${PAYLOAD.length}\r\n${PAYLOAD}\r\nEND\r\n`;

describe('parseClusterConfig', () => {
  it('parses a "config get cluster" reply, using the IPs', () => {
    expect(parseClusterConfig(CONFIG_REPLY)).toEqual({
      version: 12,
      nodes: [
        {
          host: 'mycluster.fnjyzo.cfg.0001.use1.cache.amazonaws.com',
          ip: '10.82.235.120',
          port: 11211,
          address: '10.82.235.120:11211',
        },
        {
          host: 'mycluster.fnjyzo.cfg.0002.use1.cache.amazonaws.com',
          ip: '10.80.249.27',
          port: 11211,
          address: '10.80.249.27:11211',
        },
      ],
    });
  });

  it('parses the "get AmazonElastiCache:cluster" reply of engines before 1.4.14 the same way', () => {
    expect(parseClusterConfig(LEGACY_REPLY)).toEqual(parseClusterConfig(CONFIG_REPLY));
  });

  it('parses the payload alone, and a single node', () => {
    expect(parseClusterConfig('3\nhost-a|10.0.0.1|11212\n')).toEqual({
      version: 3,
      nodes: [{ host: 'host-a', ip: '10.0.0.1', port: 11212, address: '10.0.0.1:11212' }],
    });
  });

  it('uses the host name when a node has no IP', () => {
    const config = parseClusterConfig('7\nnode-a.example||11211 node-b.example|10.0.0.2|11212\n');
    expect(config.nodes.map((n) => n.address)).toEqual(['node-a.example:11211', '10.0.0.2:11212']);
    expect(config.nodes[0].ip).toBeUndefined();
    expect(config.nodes[0].host).toBe('node-a.example');
  });

  it('brackets IPv6 addresses and tolerates CRLF and extra blanks between nodes', () => {
    const config = parseClusterConfig('1\r\nv6-node|fd00::1|11211   v4|10.0.0.3|11211 \r\n');
    expect(config.nodes.map((n) => n.address)).toEqual(['[fd00::1]:11211', '10.0.0.3:11211']);
  });

  it('accepts the IP alone in the host field when there is no host name', () => {
    expect(parseClusterConfig('1\n|10.0.0.9|11211\n').nodes[0]).toEqual({
      host: '10.0.0.9',
      ip: '10.0.0.9',
      port: 11211,
      address: '10.0.0.9:11211',
    });
  });

  it.each([
    ['', /empty cluster configuration/],
    ['12\n', /expected 2 lines/],
    ['v12\nh|10.0.0.1|11211\n', /version "v12" is not a non-negative integer/],
    ['-1\nh|10.0.0.1|11211\n', /version "-1"/],
    ['12\nh|10.0.0.1|11211\nextra\n', /expected 2 lines .* got 3/],
    ['12\nh:10.0.0.1:11211\n', /node 1 "h:10.0.0.1:11211" is not "host\|ip\|port"/],
    ['12\nh|10.0.0.1\n', /node 1 "h\|10.0.0.1" is not "host\|ip\|port"/],
    ['12\nh|10.0.0.1|0\n', /node 1 .* invalid port "0"/],
    ['12\nh|10.0.0.1|99999\n', /invalid port "99999"/],
    ['12\nh|10.0.0.1|\n', /invalid port ""/],
    ['12\n||11211\n', /node 1 "\|\|11211" has no host or IP/],
    ['12\na|10.0.0.1|11211 b|10.0.0.1|11211\n', /node 2 "b\|10.0.0.1\|11211" is listed twice/],
    ['ERROR\r\n', /the endpoint answered "ERROR"/],
    ['END\r\n', /no cluster configuration \(END\): not an ElastiCache endpoint/],
    ['CONFIG cluster 0 147\r\n12\nh|10.0.0.1|11211\n', /truncated reply/],
    ['CONFIG cluster 0 5\r\n12\nh|10.0.0.1|11211\n\r\nEND\r\n', /5-byte block .* not followed by/],
  ])('rejects %j with a clear ClusterConfigError', (text, message) => {
    expect(() => parseClusterConfig(text)).toThrow(ClusterConfigError);
    expect(() => parseClusterConfig(text)).toThrow(message);
  });
});

describe('scanClusterReply', () => {
  it('waits for the whole block, then reports its payload and length', () => {
    for (let cut = 0; cut < CONFIG_REPLY.length; cut++) {
      expect(scanClusterReply(CONFIG_REPLY.slice(0, cut))).toEqual({ kind: 'incomplete' });
    }
    expect(scanClusterReply(`${CONFIG_REPLY}junk`)).toEqual({
      kind: 'config',
      payload: PAYLOAD,
      length: CONFIG_REPLY.length,
    });
  });

  it('tells a miss, an error line and garbage apart', () => {
    expect(scanClusterReply('END\r\n')).toEqual({ kind: 'miss', length: 5 });
    expect(scanClusterReply('ERROR\r\n')).toEqual({ kind: 'error', line: 'ERROR', length: 7 });
    expect(scanClusterReply('CLIENT_ERROR bad command line format\r\n')).toMatchObject({
      kind: 'error',
    });
    expect(() => scanClusterReply('HTTP/1.1 400 Bad Request\r\n')).toThrow(
      /unexpected reply "HTTP\/1.1 400 Bad Request"/,
    );
    expect(() => scanClusterReply('x'.repeat(2000))).toThrow(/no reply line/);
  });
});

describe('discovery options', () => {
  const base = { type: 'memcached' } as const;
  it('requires exactly one of servers and discovery, naming the fields', () => {
    expect(() => new MemcachedTier({ ...base })).toThrow(TypeError);
    expect(() => new MemcachedTier({ ...base })).toThrow(
      /^memcached\.servers: required .*, unless "discovery" .* is set$/,
    );
    expect(
      () =>
        new MemcachedTier({
          ...base,
          servers: ['127.0.0.1:11211'],
          discovery: { endpoint: '127.0.0.1:11211' },
        }),
    ).toThrow(/^memcached\.discovery: not allowed together with "servers"/);
  });

  it.each<[MemcachedTierOptions['discovery'], RegExp]>([
    [{ endpoint: 'cfg.example' }, /^memcached\.discovery\.endpoint: "cfg\.example" has no port$/],
    [
      { endpoint: 'cfg.example:11211', intervalMs: 0 },
      /^memcached\.discovery\.intervalMs: 0 is not an integer >= 1$/,
    ],
    [{ endpoint: 'cfg.example:11211', intervalMs: 1.5 }, /^memcached\.discovery\.intervalMs: /],
    [{ endpoint: 'cfg.example:11211', timeoutMs: -1 }, /^memcached\.discovery\.timeoutMs: /],
    [
      { endpoint: 'cfg.example:11211', ignoreErrors: 'yes' as unknown as boolean },
      /^memcached\.discovery\.ignoreErrors: yes is not true or false$/,
    ],
  ])('rejects invalid discovery %j', (discovery, message) => {
    expect(() => new MemcachedTier({ ...base, discovery })).toThrow(message);
  });

  it('rejects an invalid failoverTime', () => {
    const servers = ['127.0.0.1:11211'];
    expect(() => new MemcachedTier({ ...base, servers, failoverTime: -1 })).toThrow(
      /^memcached\.failoverTime: -1 is not an integer >= 0$/,
    );
    expect(() => new MemcachedTier({ ...base, servers, failoverTime: 0 })).not.toThrow();
  });

  it('has no servers before the first discovery, and defaults to a 60 s interval', () => {
    const tier = new MemcachedTier({ ...base, discovery: { endpoint: 'cfg.example:11211' } });
    expect(tier.servers).toEqual([]);
    expect(tier.configVersion).toBeUndefined();
    expect(tier.clusterDiscovery?.intervalMs).toBe(60_000);
    expect(tier.clusterDiscovery?.ignoreErrors).toBe(false);
    expect(() => tier.serverFor('k')).toThrow(/no servers yet/);
    expect(() => tier.serverFor('k')).toThrow(expect.objectContaining({ code: 'E_NOT_CONNECTED' }));
  });

  it('a stopped discovery refuses to start', async () => {
    const discovery = new ElastiCacheDiscovery({ endpoint: 'cfg.example:11211' }, () => undefined);
    await discovery.stop();
    await expect(discovery.start()).rejects.toThrow(/cfg.example:11211: stopped/);
    await expect(discovery.start()).rejects.toMatchObject({ code: 'E_CLOSED' });
  });
});
