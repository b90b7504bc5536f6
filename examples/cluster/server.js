// One node of the clustered chat: the chat demo's page and actions, with the hub shared through
// Redis. `node examples/cluster/start.js` runs two of these (ports 8066 and 8067); a message typed
// in a tab of one reaches tabs of the other.
//
//   PORT=8066 REDIS_URL=redis://127.0.0.1:6379 node examples/cluster/server.js
//
// WSHUB_SECRET (the same on every node, 32 random bytes, e.g. `openssl rand -base64 32`) signs the
// cluster's messages, so nothing else that can publish on this Redis can forge them (SECURITY.md).
import { createClient } from 'redis';
import { createRedisAdapter } from 'wshub/redis';
import { createChat } from '../chat/app.js';

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

// The same app as the single-process chat; its page connects to /ws on whichever node served it.
export const { hub, server } = createChat({
  adapter: createRedisAdapter({ pub, sub, prefix: 'wshub-chat', secret: process.env.WSHUB_SECRET }),
  // Cluster membership (node up / left / expired) and Redis outages, one line each.
  logger: {
    info: (o, msg) => console.log(msg, o.node ?? ''),
    warn: (o, msg) => console.warn(msg, o.node ?? ''),
    error: (o, msg) => console.error(msg, o.err?.message ?? ''),
  },
});

const port = Number(process.env.PORT ?? 8066);
server.listen(port, process.env.HOST, () => {
  const { port: bound } = server.address();
  console.log(
    `chat node on http://localhost:${bound} (hub at ws://localhost:${bound}/ws, redis ${url})`,
  );
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, async () => {
    await hub.close();
    server.close();
    await Promise.all([pub.close(), sub.close()]);
  });
}
