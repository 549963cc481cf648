// A real Redis Cluster on loopback ports, for the fleet test: redis-server
// processes with cluster mode on, joined by `redis-cli --cluster create`.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from '../../scripts/redis-server.mjs';

export interface ClusterNode {
  port: number;
  proc: ChildProcess;
}

export interface RedisCluster {
  /** Seed nodes as REDIS_CLUSTER_NODES takes them. */
  seeds: string;
  nodes: ClusterNode[];
  /** The slot of a key, asked of the cluster (CLUSTER KEYSLOT). */
  keySlot(key: string): Promise<number>;
  /** Ports of the masters now, and of the master serving a slot. */
  masters(): Promise<number[]>;
  masterOf(slot: number): Promise<number>;
  /** A replica of the master on `port`. */
  replicaOf(port: number): Promise<number>;
  /** CLUSTER FAILOVER on a replica: it takes over its master's slots. Resolves once it serves them. */
  failover(replicaPort: number): Promise<void>;
  /** Every key of the cluster matching a pattern (SCAN on each master). */
  keys(pattern: string): Promise<string[]>;
  stop(): Promise<void>;
}

const cli = (port: number, ...args: string[]) => {
  const r = spawnSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8' });
  if (r.error) throw new Error(`redis-cli is missing (${r.error.message}): install Debian's redis-tools`);
  return r.stdout;
};

async function until(what: string, ok: () => boolean | Promise<boolean>, tries = 300): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (await ok()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`redis cluster: gave up waiting for ${what}`);
}

/** Starts masters × (1 + replicas) redis-servers and makes them one cluster. */
export async function startRedisCluster({ masters = 3, replicas = 1 } = {}): Promise<RedisCluster> {
  const dir = mkdtempSync(path.join(tmpdir(), 'cimq-cluster-'));
  const nodes: ClusterNode[] = [];
  for (let i = 0; i < masters * (1 + replicas); i++) {
    const port = await freePort();
    const busPort = await freePort();
    const proc = spawn('redis-server', [
      '--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes', '--cluster-port', String(busPort),
      '--cluster-config-file', `nodes-${port}.conf`, '--dir', dir, '--save', '', '--appendonly', 'no',
      '--cluster-node-timeout', '2000',
    ], { stdio: 'ignore' });
    nodes.push({ port, proc });
  }
  for (const n of nodes) await until(`redis-server on ${n.port}`, () => cli(n.port, 'ping').trim() === 'PONG');
  const create = spawnSync('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`),
    '--cluster-replicas', String(replicas), '--cluster-yes'], { encoding: 'utf8' });
  if (create.status !== 0) throw new Error(`redis-cli --cluster create failed:\n${create.stdout}\n${create.stderr}`);
  const ok = () => nodes.every((n) => cli(n.port, 'cluster', 'info').includes('cluster_state:ok'));
  await until('cluster_state:ok on every node', ok);
  // Replicas must be in sync before a failover can be clean.
  await until('replicas in sync', () => nodes.every((n) => {
    const info = cli(n.port, 'info', 'replication');
    return info.includes('role:master') || info.includes('master_link_status:up');
  }));

  const admin = new Redis(nodes[0]!.port, '127.0.0.1');
  const clusterNodes = () => cli(nodes[0]!.port, 'cluster', 'nodes').trim().split('\n').map((l) => {
    const [id, addr, flags, master, , , , , ...slots] = l.split(' ');
    return { id: id!, port: Number(addr!.split('@')[0]!.split(':')[1]), flags: flags!.split(','), master: master!, slots };
  });

  const cluster: RedisCluster = {
    seeds: nodes.slice(0, 3).map((n) => `127.0.0.1:${n.port}`).join(','),
    nodes,
    keySlot: async (key) => Number(await admin.call('CLUSTER', 'KEYSLOT', key)),
    async masters() {
      return clusterNodes().filter((n) => n.flags.includes('master') && !n.flags.includes('fail')).map((n) => n.port);
    },
    async masterOf(slot) {
      for (const n of clusterNodes()) {
        if (!n.flags.includes('master')) continue;
        for (const range of n.slots) {
          const [a, b] = range.split('-').map(Number);
          if (slot >= a! && slot <= (b ?? a!)) return n.port;
        }
      }
      throw new Error(`no master serves slot ${slot}`);
    },
    async replicaOf(port) {
      const all = clusterNodes();
      const master = all.find((n) => n.port === port)!;
      const replica = all.find((n) => n.master === master.id);
      if (!replica) throw new Error(`no replica of ${port}`);
      return replica.port;
    },
    async failover(replicaPort) {
      const reply = cli(replicaPort, 'cluster', 'failover').trim();
      if (reply !== 'OK') throw new Error(`CLUSTER FAILOVER on ${replicaPort}: ${reply}`);
      await until(`${replicaPort} to become a master`, () => cli(replicaPort, 'role').startsWith('master'));
      // Every node's view, not just the new master's, before anyone asks.
      await until(`every node to see ${replicaPort} as a master`, () => nodes.every((n) =>
        cli(n.port, 'cluster', 'nodes').split('\n').some((l) => l.includes(`:${replicaPort}@`) && l.split(' ')[2]!.includes('master'))));
      await until('cluster_state:ok after the failover', ok);
    },
    async keys(pattern) {
      const out: string[] = [];
      for (const port of await cluster.masters()) {
        const r = new Redis(port, '127.0.0.1');
        let cursor = '0';
        do {
          const [next, batch] = await r.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
          out.push(...batch);
          cursor = next;
        } while (cursor !== '0');
        r.disconnect();
      }
      return out;
    },
    async stop() {
      admin.disconnect();
      await Promise.all(nodes.map((n) => new Promise<void>((resolve) => {
        if (n.proc.exitCode !== null) return resolve();
        n.proc.once('exit', () => resolve());
        n.proc.kill('SIGKILL');
      })));
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return cluster;
}
