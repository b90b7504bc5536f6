// A private Redis Cluster per test file: six `redis-server --cluster-enabled yes` processes (three
// masters, three replicas) on free ports of 127.0.0.1, joined by `redis-cli --cluster create`, and
// the topology changes the tests make to it: a master killed with SIGKILL, a manual failover, a
// slot moved to another master. Every wait is bounded; every process is stopped by its PID.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from 'redis';
import { within } from './wait.ts';

/**
 * Milliseconds a master may be unreachable before the cluster fails it over (Redis's default,
 * 15000, would make a kill -9 test take 20 s). Failover after a kill takes about this plus 0.5–1 s
 * of replica election (`cluster.c` clusterHandleSlaveFailover: 500 ms + random 0–500 ms + rank).
 */
export const NODE_TIMEOUT = 1000;

export interface ClusterNode {
  readonly port: number;
  readonly pid: number;
  /** The 40-character node id from CLUSTER MYID. */
  readonly id: string;
  /** False once killed. */
  readonly alive: boolean;
}

/** One line of CLUSTER NODES. */
export interface NodeView {
  id: string;
  port: number;
  flags: string[];
  /** id of its master, for a replica */
  master: string | undefined;
  /** owned slot ranges, inclusive */
  slots: [number, number][];
}

export interface RedisCluster {
  readonly nodes: readonly ClusterNode[];
  /** For `createCluster({ rootNodes })`: every node's URL. */
  readonly rootNodes: { url: string }[];
  /** Sends one command to the node on `port` (an admin connection kept per node). */
  command(port: number, ...args: string[]): Promise<unknown>;
  /** CLUSTER KEYSLOT: the slot of a key or (sharded) channel name. */
  slot(name: string): Promise<number>;
  /** CLUSTER NODES as seen by the node on `port` (any live node if omitted). */
  view(port?: number): Promise<NodeView[]>;
  /** The port of the master owning `slot`, as a live node sees it. */
  masterOf(slot: number): Promise<number>;
  /** The port of a live replica of the master on `port`. */
  replicaOf(port: number): Promise<number>;
  /** The ports of the live masters. */
  masters(): Promise<number[]>;
  /** PUBSUB SHARDNUMSUB summed over the masters: the subscribers of a sharded channel. */
  shardSubscribers(channel: string): Promise<number>;
  /** SIGKILL on the node's PID; resolves once the process has exited. */
  kill(port: number): Promise<void>;
  /**
   * Kills the master owning `slot` with SIGKILL and waits until a replica owns the slot in every
   * live node's view and every live node says cluster_state:ok. Resolves the two ports.
   */
  killMaster(slot: number, ms?: number): Promise<{ killed: number; promoted: number }>;
  /** CLUSTER FAILOVER on a replica of the master owning `slot`; waits as `killMaster` does. */
  failover(slot: number, ms?: number): Promise<{ demoted: number; promoted: number }>;
  /**
   * Moves `slot` to the master on `to` the way `redis-cli --cluster reshard` does: SETSLOT
   * IMPORTING / MIGRATING, MIGRATE of its keys, then SETSLOT NODE on every master (target first).
   * Pub/sub channels are not keys: only the last step matters to them. Waits until every live node
   * agrees. Resolves the source port.
   */
  migrate(slot: number, to: number, ms?: number): Promise<number>;
  /** Resolves once every live node says cluster_state:ok and agrees on who owns `slot` (if given). */
  settled(ms?: number, slot?: number, owner?: number): Promise<void>;
  /** Kills every process, removes the config files. */
  close(): Promise<void>;
}

type Admin = ReturnType<typeof createClient>;

interface Proc {
  port: number;
  child: ChildProcess;
  id: string;
  alive: boolean;
  admin: Admin | undefined;
}

/** `n` distinct free ports: all probes are held open together, then released. */
async function freePorts(n: number): Promise<number[]> {
  const probes: Server[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const probe = createServer();
      probes.push(probe);
      await new Promise<void>((resolve, reject) => {
        probe.once('error', reject);
        probe.listen(0, '127.0.0.1', () => resolve());
      });
    }
    return probes.map((p) => (p.address() as AddressInfo).port);
  } finally {
    await Promise.all(probes.map((p) => new Promise((resolve) => p.close(resolve))));
  }
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

function spawnNode(dir: string, port: number, busPort: number): Promise<ChildProcess> {
  // prettier-ignore
  const child = spawn('redis-server', [
    '--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes',
    '--cluster-port', String(busPort), '--cluster-config-file', `nodes-${port}.conf`, '--dir', dir,
    '--cluster-node-timeout', String(NODE_TIMEOUT), '--save', '', '--appendonly', 'no',
    // A replica's first sync would otherwise wait 5 s for more replicas to share the transfer.
    '--repl-diskless-sync-delay', '0',
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  let tail = '';
  const keep = (chunk: Buffer): void => void (tail = (tail + chunk.toString()).slice(-4000));
  // Kept reading for the process's life: a full pipe would block redis-server.
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  return within(
    new Promise<ChildProcess>((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (code) =>
        reject(new Error(`redis-server on ${port} exited with ${code}: ${tail}`)),
      );
      const ready = (): void => {
        if (!tail.includes('Ready to accept connections')) return;
        child.stdout!.off('data', ready);
        resolve(child);
      };
      child.stdout!.on('data', ready);
    }),
    10_000,
    `redis-server --cluster-enabled on port ${port}`,
  ).catch((err: unknown) => {
    child.kill('SIGKILL');
    throw err;
  });
}

/** Polls `check` (a cluster has no events for topology) every 25 ms until it returns true. */
async function until(check: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  let last: unknown;
  const deadline = performance.now() + ms;
  while (performance.now() < deadline) {
    try {
      if (await check()) return;
      last = undefined;
    } catch (err) {
      last = err; // a node mid-failover may refuse or drop a command: ask again
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(
    `timed out after ${ms} ms waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}`,
  );
}

function parseNodes(text: string): NodeView[] {
  return text
    .trim()
    .split('\n')
    .map((line) => {
      const [id, address, flags, master, , , , , ...slots] = line.split(' ');
      return {
        id: id!,
        port: Number(/:(\d+)@/.exec(address!)![1]),
        flags: flags!.split(','),
        master: master === '-' ? undefined : master,
        // "[slot->-id]" / "[slot-<-id]" are migration marks, not ownership
        slots: slots
          .filter((s) => !s.startsWith('['))
          .map((s) => {
            const [from, to = from] = s.split('-');
            return [Number(from), Number(to)] as [number, number];
          }),
      };
    });
}

const owns = (view: NodeView, slot: number): boolean =>
  view.slots.some(([from, to]) => slot >= from && slot <= to);

/**
 * Starts six nodes and joins them into a cluster of three masters with one replica each; resolves
 * once every node says cluster_state:ok and every replica's link to its master is up.
 */
export async function startRedisCluster(): Promise<RedisCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'wshub-redis-cluster-'));
  const procs: Proc[] = [];
  const live = () => procs.filter((p) => p.alive);
  const byPort = (port: number): Proc => {
    const proc = procs.find((p) => p.port === port);
    if (!proc) throw new Error(`no cluster node on port ${port}`);
    return proc;
  };

  const admin = async (proc: Proc): Promise<Admin> => {
    if (proc.admin) return proc.admin;
    const client: Admin = createClient({
      url: `redis://127.0.0.1:${proc.port}`,
      disableOfflineQueue: true,
      socket: { reconnectStrategy: false },
    });
    client.on('error', () => {}); // a killed node's admin connection fails; the caller sees the rejection
    proc.admin = client;
    try {
      await within(client.connect(), 2000, `admin connection to ${proc.port}`);
    } catch (err) {
      proc.admin = undefined;
      client.destroy();
      throw err;
    }
    client.once('end', () => {
      if (proc.admin === client) proc.admin = undefined;
    });
    return client;
  };
  const command = async (port: number, ...args: string[]): Promise<unknown> =>
    within((await admin(byPort(port))).sendCommand(args), 5000, `${args.join(' ')} on ${port}`);

  const stopAll = async (): Promise<void> => {
    for (const proc of procs) {
      proc.admin?.destroy();
      proc.admin = undefined;
      proc.child.kill('SIGKILL');
      proc.alive = false;
    }
    await within(Promise.all(procs.map((p) => exited(p.child))), 5000, 'redis-server exits');
    await rm(dir, { recursive: true, force: true });
  };

  try {
    const ports = await freePorts(12);
    const started = await Promise.allSettled(
      ports.slice(0, 6).map((port, i) => spawnNode(dir, port, ports[i + 6]!)),
    );
    for (const [i, s] of started.entries()) {
      if (s.status === 'fulfilled')
        procs.push({ port: ports[i]!, child: s.value, id: '', alive: true, admin: undefined });
    }
    const failed = started.find((s) => s.status === 'rejected');
    if (failed) throw failed.reason;
    for (const proc of procs) proc.id = String(await command(proc.port, 'CLUSTER', 'MYID'));

    const create = spawn(
      'redis-cli',
      [
        '--cluster',
        'create',
        ...procs.map((p) => `127.0.0.1:${p.port}`),
        '--cluster-replicas',
        '1',
        '--cluster-yes',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    create.stdout!.on('data', (chunk: Buffer) => void (out += chunk.toString()));
    create.stderr!.on('data', (chunk: Buffer) => void (out += chunk.toString()));
    const code = await within(
      new Promise<number | null>((resolve) => create.once('exit', (c) => resolve(c))),
      15_000,
      'redis-cli --cluster create',
    ).catch((err: unknown) => {
      create.kill('SIGKILL');
      throw err;
    });
    if (code !== 0) throw new Error(`redis-cli --cluster create exited with ${code}:\n${out}`);
  } catch (err) {
    await stopAll();
    throw err;
  }

  const view = async (port?: number): Promise<NodeView[]> =>
    parseNodes(String(await command(port ?? live()[0]!.port, 'CLUSTER', 'NODES')));

  const settled = async (ms = 10_000, slot?: number, owner?: number): Promise<void> => {
    await until(
      async () => {
        for (const proc of live()) {
          if (!String(await command(proc.port, 'CLUSTER', 'INFO')).includes('cluster_state:ok'))
            return false;
          if (slot === undefined) continue;
          const holder = (await view(proc.port)).find(
            (n) => n.flags.includes('master') && owns(n, slot),
          );
          if (holder?.port !== owner) return false;
        }
        return true;
      },
      ms,
      slot === undefined
        ? 'cluster_state:ok on every node'
        : `slot ${slot} on ${owner} in every node's view`,
    );
  };

  const masterOf = async (slot: number): Promise<number> => {
    const holder = (await view()).find(
      (n) => n.flags.includes('master') && !n.flags.includes('fail') && owns(n, slot),
    );
    if (!holder) throw new Error(`no live master owns slot ${slot}`);
    return holder.port;
  };

  const replicaOf = async (port: number): Promise<number> => {
    const nodes = await view();
    const master = nodes.find((n) => n.port === port)!;
    const replica = nodes.find(
      (n) => n.master === master.id && !n.flags.includes('fail') && byPort(n.port).alive,
    );
    if (!replica) throw new Error(`master ${port} has no live replica`);
    return replica.port;
  };

  const kill = async (port: number): Promise<void> => {
    const proc = byPort(port);
    proc.admin?.destroy();
    proc.admin = undefined;
    proc.alive = false;
    proc.child.kill('SIGKILL');
    await within(exited(proc.child), 5000, `redis-server ${port} exit`);
  };

  const cluster: RedisCluster = {
    get nodes() {
      return procs.map((p) => ({ port: p.port, pid: p.child.pid!, id: p.id, alive: p.alive }));
    },
    rootNodes: procs.map((p) => ({ url: `redis://127.0.0.1:${p.port}` })),
    command,
    async slot(name) {
      return Number(await command(live()[0]!.port, 'CLUSTER', 'KEYSLOT', name));
    },
    view,
    masterOf,
    replicaOf,
    async masters() {
      return (await view())
        .filter(
          (n) => n.flags.includes('master') && !n.flags.includes('fail') && n.slots.length > 0,
        )
        .map((n) => n.port);
    },
    async shardSubscribers(channel) {
      let total = 0;
      for (const port of await cluster.masters()) {
        total += Number(
          ((await command(port, 'PUBSUB', 'SHARDNUMSUB', channel)) as [string, number])[1],
        );
      }
      return total;
    },
    kill,
    async killMaster(slot, ms = 15_000) {
      const killed = await masterOf(slot);
      const promoted = await replicaOf(killed);
      await kill(killed);
      await settled(ms, slot, promoted);
      return { killed, promoted };
    },
    async failover(slot, ms = 10_000) {
      const demoted = await masterOf(slot);
      const promoted = await replicaOf(demoted);
      await command(promoted, 'CLUSTER', 'FAILOVER');
      await settled(ms, slot, promoted);
      return { demoted, promoted };
    },
    async migrate(slot, to, ms = 10_000) {
      const from = await masterOf(slot);
      if (from === to) throw new Error(`slot ${slot} is already on ${to}`);
      const [source, target] = [byPort(from), byPort(to)];
      await command(to, 'CLUSTER', 'SETSLOT', String(slot), 'IMPORTING', source.id);
      await command(from, 'CLUSTER', 'SETSLOT', String(slot), 'MIGRATING', target.id);
      for (;;) {
        const keys = (await command(
          from,
          'CLUSTER',
          'GETKEYSINSLOT',
          String(slot),
          '100',
        )) as string[];
        if (keys.length === 0) break;
        await command(from, 'MIGRATE', '127.0.0.1', String(to), '', '0', '5000', 'KEYS', ...keys);
      }
      // Target first, so the source never redirects to a node that does not yet know it owns the slot.
      const masters = await cluster.masters();
      for (const port of [to, from, ...masters.filter((p) => p !== to && p !== from)]) {
        await command(port, 'CLUSTER', 'SETSLOT', String(slot), 'NODE', target.id);
      }
      await settled(ms, slot, to);
      return from;
    },
    settled,
    close: stopAll,
  };

  try {
    await settled(10_000);
    // A replica can fail over (or take a manual failover) only once it has synced with its master.
    await until(
      async () => {
        for (const n of (await view()).filter((v) => v.master !== undefined)) {
          if (
            !String(await command(n.port, 'INFO', 'replication')).includes('master_link_status:up')
          )
            return false;
        }
        return (await view()).filter((v) => v.master !== undefined).length === 3;
      },
      10_000,
      'every replica linked to its master',
    );
  } catch (err) {
    await stopAll();
    throw err;
  }
  return cluster;
}
