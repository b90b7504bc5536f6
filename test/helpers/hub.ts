import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TestContext } from 'node:test';
import { after } from 'node:test';
import assert from 'node:assert/strict';
import { createManager } from '../../src/index.ts';
import type { Manager, ManagerOptions } from '../../src/index.ts';
import { within } from './wait.ts';

export interface Started<Data> {
  hub: Manager<Data>;
  server: Server;
  port: number;
  /** ws://127.0.0.1:port + path */
  url: string;
}

/** Starts a real http.Server on 127.0.0.1:0 with `hub.handle(server, path)`; cleanup is registered on `t`. */
export async function startHub<Schemas, Data = undefined>(
  t: TestContext,
  options: ManagerOptions<Schemas, Data> = {},
  path = '/ws',
): Promise<Started<Data>> {
  const hub = createManager(options);
  const server = createServer();
  hub.handle(server, path);
  await listen(server);
  t.after(async () => {
    await within(hub.close({ timeout: 500 }), 5000, 'hub.close() in cleanup');
    await closeServer(server);
    assert.equal(hub.clients.size, 0, 'clients left registered after hub.close()');
  });
  const { port } = server.address() as AddressInfo;
  return { hub, server, port, url: `ws://127.0.0.1:${port}${path}` };
}

export function listen(server: Server): Promise<void> {
  return within(
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    }),
    5000,
    'server.listen',
  );
}

export function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  return within(
    new Promise<void>((resolve) => server.close(() => resolve())),
    5000,
    'server.close',
  );
}

/** Registers a file-level check that no TCP handle outlives the file's tests. */
export function assertNoLeaks(): void {
  after(async () => {
    const tcp = () => process.getActiveResourcesInfo().filter((r) => r.startsWith('TCP'));
    // A closed handle leaves the list when libuv runs its close callback, a loop turn or two later.
    for (let turn = 0; turn < 50 && tcp().length > 0; turn++)
      await new Promise((r) => setImmediate(r));
    const leaked = tcp();
    assert.deepEqual(leaked, [], `leaked handles: ${leaked.join(', ')}`);
  });
}
