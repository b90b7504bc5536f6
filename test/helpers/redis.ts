// A private redis-server per test file, and node-redis clients on it that tests never leak.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { createClient } from 'redis';
import { within } from './wait.ts';

export type Redis = ReturnType<typeof createClient>;

export interface RedisServer {
  readonly port: number;
  readonly url: string;
  /** The server process, for SIGSTOP / SIGCONT (a stall with the connection up). */
  readonly pid: number;
  /** Kills the server (SIGKILL: an outage, not a shutdown) and waits for it to exit. */
  stop(): Promise<void>;
  /** Starts it again on the same port, empty. */
  restart(): Promise<void>;
  /** A connected client with fast reconnects (and `options`, e.g. an ACL user); quit by `close()`. */
  client(options?: { username?: string; password?: string }): Promise<Redis>;
  /** Quits every client, then stops the server. */
  close(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer().unref();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

function spawnRedis(port: number): Promise<ChildProcess> {
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  return within(
    new Promise<ChildProcess>((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (code) =>
        reject(new Error(`redis-server on ${port} exited with ${code}: ${out}`)),
      );
      child.stdout!.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes('Ready to accept connections')) resolve(child);
      });
    }),
    10_000,
    `redis-server on port ${port}`,
  );
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/**
 * Starts `redis-server` on a free port of 127.0.0.1 (a port grabbed between probe and bind is
 * retried). The redis port cannot be 0, so this is the one probe-then-bind in the tests.
 */
export async function startRedis(): Promise<RedisServer> {
  let port = 0;
  let child: ChildProcess | undefined;
  for (let attempt = 0; !child; attempt++) {
    port = await freePort();
    try {
      child = await spawnRedis(port);
    } catch (err) {
      if (attempt >= 3) throw err;
    }
  }
  const clients = new Set<Redis>();
  const server: RedisServer = {
    port,
    url: `redis://127.0.0.1:${port}`,
    get pid() {
      return child!.pid!;
    },
    async stop() {
      child!.kill('SIGKILL');
      await within(exited(child!), 5000, 'redis-server exit');
    },
    async restart() {
      child = await spawnRedis(port);
    },
    async client(options = {}) {
      const client: Redis = createClient({
        url: server.url,
        socket: { reconnectStrategy: () => 50 },
        ...options,
      });
      client.on('error', () => {}); // the adapter reports; tests assert on its `error` events
      clients.add(client);
      await within(client.connect(), 5000, 'redis connect');
      return client;
    },
    async close() {
      child!.kill('SIGKILL');
      for (const client of clients) if (client.isOpen) client.destroy();
      clients.clear();
      await within(exited(child!), 5000, 'redis-server exit');
    },
  };
  return server;
}
