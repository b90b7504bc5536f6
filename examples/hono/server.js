// wshub next to a Hono app on @hono/node-server: `node examples/hono/server.js`.
// `serve()` returns the node http.Server it created; the hub mounts on it directly. This skips
// Hono's `upgradeWebSocket` helper on purpose: wshub runs its checks (origin, authenticate,
// maxClients) before the handshake and owns the `ws` socket, and Node's 'upgrade' event is
// where it gets both.
import { Hono } from 'hono';
import { serve } from '@hono/node-server';
import { createManager } from 'wshub';

const hub = createManager({
  actions: {
    // {"actioncode":"chat_send","data":{"text":"hi"},"id":1}
    chatSend(data, ctx) {
      ctx.hub.broadcast('chat_message', { from: ctx.client.id, text: String(data?.text ?? '') });
      return { ok: true };
    },
  },
});

const app = new Hono();
app.get('/health', (c) => c.json({ clients: hub.clients.size }));

const server = serve(
  { fetch: app.fetch, port: Number(process.env.PORT ?? 8066), hostname: process.env.HOST },
  ({ port }) =>
    console.log(`listening on http://localhost:${port} (hub at ws://localhost:${port}/ws)`),
);
hub.handle(server, '/ws');

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, async () => {
    await hub.close();
    server.close();
  });
}
