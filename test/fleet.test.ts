// Fleet scale on a real Redis Cluster (3 masters, 3 replicas, started here
// on loopback ports): four node daemons, each a `cimq worker` process with its
// own emulator state, configured only by REDIS_CLUSTER_NODES. Every job runs
// on its own node; every key of a node hashes to that node's slot; cleaning
// one node leaves the others alone; a master failing over mid-run loses no
// job and no cache entry.
import { mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CimqClient, volumeGuid } from '../dist/src/index.js';
import { spawnDaemon, type DaemonProcess } from './support/daemon-process.js';
import { createTestEnv, type TestEnv } from './support/env.js';
import { startRedisCluster, type RedisCluster } from './support/redis-cluster.js';

const NODES = 4;
const PER_NODE = 15;

interface FleetNode {
  name: string;
  root: string;
  daemon: DaemonProcess;
  client: CimqClient;
}

let env: TestEnv;
let cluster: RedisCluster;
const fleet: FleetNode[] = [];

const volumesOf = (n: FleetNode) => {
  try {
    return readdirSync(n.root).filter((f) => f.startsWith('Volume{')).sort();
  } catch {
    return [];
  }
};
const containers = (n: FleetNode, from: number, count: number) =>
  Array.from({ length: count }, (_, j) => `${n.name}-c${from + j}`);
const expectedVolumes = (ids: string[]) => ids.map((id) => `Volume{${volumeGuid(id)}}`).sort();

beforeAll(async () => {
  env = await createTestEnv('fleet');
  cluster = await startRedisCluster({ masters: 3, replicas: 1 });
  for (let i = 0; i < NODES; i++) {
    const name = `${env.node}-n${i}`;
    const root = path.join(env.emulatorRoot, `node-${i}`);
    mkdirSync(root, { recursive: true });
    const daemon = spawnDaemon(env, {
      REDIS_CLUSTER_NODES: cluster.seeds, CIMQ_NODE: name, CIMFS_EMULATOR_ROOT: root,
      // Calls take a little while, so that a failover finds jobs in flight.
      CIMFS_EMULATOR_LATENCY_MS: '20',
    });
    const client = new CimqClient({ redisClusterNodes: cluster.seeds, prefix: env.prefix, node: name, timeoutMs: 60_000 });
    fleet.push({ name, root, daemon, client });
  }
  await Promise.all(fleet.map((n) => n.daemon.ready));
}, 120_000);

afterAll(async () => {
  await Promise.all(fleet.map(async (n) => {
    await n.client.close();
    await n.daemon.stop();
  }));
  await cluster?.stop();
  await env?.dispose();
});

describe('a fleet on one Redis Cluster', () => {
  it('runs every node\'s jobs on that node only', async () => {
    const cim = env.cim('fleet.cim');
    await Promise.all(fleet.map((n) => Promise.all(containers(n, 0, PER_NODE).map((id) => n.client.mount({ containerId: id, cimPath: cim })))));
    for (const n of fleet) {
      expect(volumesOf(n), n.name).toEqual(expectedVolumes(containers(n, 0, PER_NODE)));
      const entries = await n.client.list();
      expect(entries.map((e) => e.containerId).sort(), n.name).toEqual(containers(n, 0, PER_NODE).sort());
      expect(entries.every((e) => e.state === 'mounted')).toBe(true);
    }
  });

  it('keeps every key of a node, BullMQ\'s and the cache\'s, in that node\'s slot, and spreads nodes over slots', async () => {
    const keys = await cluster.keys(`${env.prefix}:*`);
    const byNode = new Map<string, string[]>();
    for (const key of keys) {
      const tag = /^[^{]*\{([^}]+)\}/.exec(key)?.[1];
      expect(tag, key).toBeDefined();
      byNode.set(tag!, [...(byNode.get(tag!) ?? []), key]);
    }
    expect([...byNode.keys()].sort()).toEqual(fleet.map((n) => n.name).sort());
    const slots = new Map<string, number>();
    for (const n of fleet) {
      const slot = await cluster.keySlot(`{${n.name}}`);
      slots.set(n.name, slot);
      const own = byNode.get(n.name)!;
      for (const key of own) expect(await cluster.keySlot(key), key).toBe(slot);
      const base = `${env.prefix}:{${n.name}}`;
      // BullMQ's queue keys and the cache's keys are both there.
      for (const k of [`${base}:meta`, `${base}:events`, `${base}:completed`, `${base}:mounts`, `${base}:seq`, `${base}:daemon`, `${base}:status`]) {
        expect(own, `${n.name} has ${k}`).toContain(k);
      }
      expect(own.filter((k) => k.startsWith(`${base}:mount:`))).toHaveLength(PER_NODE);
    }
    expect(new Set(slots.values()).size).toBe(NODES);
    const masters = await Promise.all([...slots.values()].map((s) => cluster.masterOf(s)));
    console.log(`fleet: ${keys.length} keys; node slots ${[...slots.values()].join(', ')} on ${new Set(masters).size} of 3 masters`);
  });

  it('cleans one node without touching another', async () => {
    const [first, ...others] = fleet;
    const res = await first!.client.cleanupAllExcept([]);
    expect(res.unmounted).toHaveLength(PER_NODE);
    expect(res.failures).toEqual([]);
    expect(volumesOf(first!)).toEqual([]);
    expect(await first!.client.list()).toEqual([]);
    for (const n of others) {
      expect(volumesOf(n), n.name).toEqual(expectedVolumes(containers(n, 0, PER_NODE)));
      expect(await n.client.list(), n.name).toHaveLength(PER_NODE);
    }
  });

  it('loses no job and no cache entry when the master of a node\'s slot fails over mid-run', async () => {
    const n = fleet[1]!;
    const master = await cluster.masterOf(await cluster.keySlot(`{${n.name}}`));
    const replica = await cluster.replicaOf(master);
    const cim = env.cim('fleet.cim');
    const ids = containers(n, PER_NODE, 30);
    const jobs = Promise.allSettled(ids.map((id) => n.client.mount({ containerId: id, cimPath: cim })));
    // Fail over once some of them are done and the rest are in flight.
    for (let i = 0; i < 200 && volumesOf(n).length < PER_NODE + 5; i++) await new Promise((r) => setTimeout(r, 25));
    const doneBefore = volumesOf(n).length - PER_NODE;
    const t = performance.now();
    await cluster.failover(replica);
    console.log(`fleet: master ${master} failed over to ${replica} in ${(performance.now() - t).toFixed(0)} ms with ${doneBefore} of ${ids.length} mounts done`);
    expect(await cluster.masterOf(await cluster.keySlot(`{${n.name}}`))).toBe(replica);

    const after = performance.now();
    const results = await jobs;
    // Printed, not asserted: how long waiting clients went without results after the failover.
    console.log(`fleet: all results ${(performance.now() - after).toFixed(0)} ms after the failover`);
    expect(results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason))).toEqual([]);
    const all = [...containers(n, 0, PER_NODE), ...ids];
    expect(volumesOf(n)).toEqual(expectedVolumes(all));
    const entries = await n.client.list();
    expect(entries.map((e) => e.containerId).sort()).toEqual(all.sort());
    expect(entries.every((e) => e.state === 'mounted')).toBe(true);
    const status = await n.client.status();
    expect(status.jobs).toMatchObject({ failed: 0, active: 0, waiting: 0 });
    // The other nodes did not notice.
    for (const other of fleet.slice(2)) expect(await other.client.list(), other.name).toHaveLength(PER_NODE);
  });
});
