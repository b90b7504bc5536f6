// A hub node in its own process, for the kill -9 test: REDIS_URL, PREFIX, HEARTBEAT in the env;
// prints its ws URL once its cluster channels are subscribed.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createClient } from 'redis';
import { createManager } from '../../src/index.ts';
import { createRedisAdapter } from '../../src/redis.ts';

const pub = createClient({ url: process.env.REDIS_URL! });
pub.on('error', () => {});
await pub.connect();
const sub = pub.duplicate();
sub.on('error', () => {});
await sub.connect();
const heartbeatInterval = Number(process.env.HEARTBEAT);
let announce!: () => void;
const hello = new Promise<void>((resolve) => (announce = resolve));
const hub = createManager({
  adapter: createRedisAdapter({ pub, sub, prefix: process.env.PREFIX!, heartbeatInterval }),
  heartbeat: false,
  id: (req) => new URL(req.url!, 'http://x').searchParams.get('id')!,
  logger: { info: (_o: unknown, msg: string) => msg === 'wshub: cluster node up' && announce() },
});
const server = createServer();
hub.handle(server, '/ws');
server.listen(0, '127.0.0.1', () => {
  // The parent's node has answered our hello: both sides see each other.
  void hello.then(() => console.log(`ws://127.0.0.1:${(server.address() as AddressInfo).port}/ws`));
});
