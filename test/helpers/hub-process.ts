// A hub in its own process, for heap measurements that the test runner's own allocations would
// blur: `node --expose-gc --import tsx hub-process.ts`, with HUB_OPTIONS (JSON) in the env.
// Prints its URL; `GET /mem` answers process.memoryUsage() after full GCs, and the client count.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createManager } from '../../src/index.ts';

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run hub-process.ts with --expose-gc');
const hub = createManager({
  heartbeat: false,
  ...(JSON.parse(process.env.HUB_OPTIONS ?? '{}') as object),
});
const server = createServer((req, res) => {
  if (req.url !== '/mem') return void res.writeHead(404).end();
  for (let i = 0; i < 4; i++) gc();
  const { rss, heapUsed, external, arrayBuffers } = process.memoryUsage();
  res.setHeader('content-type', 'application/json');
  res.end(
    JSON.stringify({
      rss,
      heapUsed,
      external,
      arrayBuffers,
      clients: hub.clients.size,
      stats: hub.stats(),
    }),
  );
});
hub.handle(server, '/ws');
server.listen(0, '127.0.0.1', () =>
  console.log(
    `http://127.0.0.1:${(server.address() as AddressInfo).port} (WebSocket at /ws, GET /mem)`,
  ),
);
