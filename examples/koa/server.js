// wshub next to a Koa 3 app: `node examples/koa/server.js`.
// Koa never sees upgrades; `app.listen()` returns the http.Server and the hub mounts on it.
import Koa from 'koa';
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

const app = new Koa();
app.use((ctx) => {
  if (ctx.path === '/health') ctx.body = { clients: hub.clients.size };
});

const server = app.listen(Number(process.env.PORT ?? 8066), process.env.HOST, () => {
  const { port } = server.address();
  console.log(`listening on http://localhost:${port} (hub at ws://localhost:${port}/ws)`);
});
hub.handle(server, '/ws');

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, async () => {
    await hub.close();
    server.close();
  });
}
