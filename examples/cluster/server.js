// One node of the clustered chat: the chat demo's page and actions, with the hub shared through
// Redis. `node examples/cluster/start.js` runs two of these (ports 8066 and 8067); a message typed
// in a tab of one reaches tabs of the other.
//
//   PORT=8066 REDIS_URL=redis://127.0.0.1:6379 node examples/cluster/server.js
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { createClient } from 'redis';
import { createManager, HubError, Code } from 'wshub';
import { createRedisAdapter } from 'wshub/redis';

// The same page as the single-process chat: it connects to /ws on whichever node served it.
const page = await readFile(new URL('../chat/index.html', import.meta.url));
const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

// Two connections: `sub` is put in subscriber mode. Without an 'error' listener, a Redis outage
// would crash the process; the hub reports it too (logger below), and keeps serving local clients.
const pub = createClient({ url }).on('error', () => {});
const sub = pub.duplicate().on('error', () => {});
try {
  await Promise.all([pub.connect(), sub.connect()]);
} catch (err) {
  console.error(`cannot reach Redis at ${url} (set REDIS_URL): ${err.message}`);
  process.exit(1);
}

export const hub = createManager({
  adapter: createRedisAdapter({ pub, sub, prefix: 'wshub-chat' }),
  actions: {
    chatSend(data, ctx) {
      const text = typeof data?.text === 'string' ? data.text.trim() : '';
      if (!text || text.length > 500) throw new HubError(Code.InvalidParams, 'text must be 1-500 characters');
      ctx.hub.broadcast('chat_message', { from: ctx.client.data.name, text, at: Date.now() });
      return { ok: true };
    },
    setName(data, ctx) {
      const name = typeof data?.name === 'string' ? data.name.trim().slice(0, 32) : '';
      if (!name) throw new HubError(Code.InvalidParams, 'name must not be empty');
      ctx.client.data.name = name;
      return { name };
    },
  },
  authenticate: () => ({ name: 'guest' }),
  // Cluster membership (node up / left / expired) and Redis outages, one line each.
  logger: {
    info: (o, msg) => console.log(msg, o.node ?? ''),
    warn: (o, msg) => console.warn(msg, o.node ?? ''),
    error: (o, msg) => console.error(msg, o.err?.message ?? ''),
  },
});

// The count is cluster-wide; the node where someone came or went tells everyone.
const online = async () => hub.broadcast('online', { count: await hub.cluster.size() });
hub.on('connection', (client) => {
  client.send('welcome', { id: client.id, name: client.data.name });
  void online();
});
hub.on('disconnect', () => void online());

export const server = createServer((req, res) => {
  if (req.method === 'GET' && (req.url === '/' || req.url === '/index.html')) {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(page);
  } else {
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
  }
});
hub.handle(server, '/ws');

const port = Number(process.env.PORT ?? 8066);
server.listen(port, process.env.HOST, () => {
  const { port: bound } = server.address();
  console.log(`chat node on http://localhost:${bound} (hub at ws://localhost:${bound}/ws, redis ${url})`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, async () => {
    await hub.close();
    server.close();
    await Promise.all([pub.close(), sub.close()]);
  });
}
