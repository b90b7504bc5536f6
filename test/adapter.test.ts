// An Adapter written from scratch, as README "Writing another broker adapter" describes it: no
// InMemoryAdapter underneath, only what AdapterHost offers (clients, deliver, reportError).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startHub, assertNoLeaks } from './helpers/hub.ts';
import { connect, push } from './helpers/client.ts';
import { Frame, type Adapter, type AdapterHost, type Client, type Target } from '../src/index.ts';

assertNoLeaks();

/** Everyone or a list of ids; no rooms. What a broker would carry, `inject` delivers. */
class TinyAdapter implements Adapter {
  readonly added: (client: Client) => void = () => {};
  readonly removed: (client: Client) => void = () => {};
  constructor(readonly host: AdapterHost) {}
  join(): boolean {
    return false;
  }
  leave(): boolean {
    return false;
  }
  broadcast(frame: Frame, target: Target | undefined): number {
    let n = 0;
    for (const client of this.host.clients.values()) {
      if (target?.to && !target.to.includes(client.id)) continue;
      if (target?.except?.includes(client.id)) continue;
      if (this.host.deliver(client, frame)) n++;
    }
    return n;
  }
  send(clientId: string, frame: Frame): boolean {
    const client = this.host.clients.get(clientId);
    return client !== undefined && this.host.deliver(client, frame);
  }
  size(): Promise<number> {
    return Promise.resolve(this.host.clients.size);
  }
  has(clientId: string): Promise<boolean> {
    return Promise.resolve(this.host.clients.has(clientId));
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
  /** A frame that arrived from elsewhere as text, delivered to everyone here. */
  inject(text: string): number {
    return this.broadcast(new Frame(text), undefined);
  }
}

test('an Adapter that does not extend InMemoryAdapter delivers with host.deliver, counted and in order', async (t) => {
  let adapter!: TinyAdapter;
  const { hub, url } = await startHub(t, {
    adapter: (host) => (adapter = new TinyAdapter(host)),
    id: (req) => new URL(req.url!, 'http://x').searchParams.get('id')!,
    actions: { ping: () => 'pong' },
  });
  const a = await connect(t, `${url}?id=a`);
  const b = await connect(t, `${url}?id=b`);

  assert.equal(hub.broadcast('news', 1, { except: ['b'] }), 1);
  assert.equal(hub.send('b', 'dm', 2), true);
  assert.equal(hub.send('nobody', 'dm', 3), false);
  const text = '{"code":0,"msg":"success","actioncode":"remote","data":{"from":"elsewhere"}}';
  assert.equal(adapter.inject(text), 2);
  assert.deepEqual(await a.next('news'), push('news', 1));
  assert.deepEqual(await a.next('the injected frame'), push('remote', { from: 'elsewhere' }));
  assert.deepEqual(await b.next('dm'), push('dm', 2));
  assert.deepEqual(await b.next('the injected frame'), push('remote', { from: 'elsewhere' }));
  assert.deepEqual(await a.request('ping'), { ...push('ping', 'pong'), id: 1 });
  assert.equal(hub.stats().messagesOut, 5, 'deliveries count like any push');

  // A client that is gone is not delivered to.
  const [client] = hub.clients;
  hub.unregister(client!);
  assert.equal(adapter.host.deliver(client!, new Frame(text)), false);
  assert.equal(await hub.cluster.size(), 1);
});
