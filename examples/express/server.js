// wshub next to an Express 5 app: `node examples/express/server.js`.
// `app.listen()` returns the http.Server; the hub takes its upgrades to /ws, Express the rest.
import express from 'express';
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

const app = express();
app.use(express.json());
app.get('/health', (req, res) => res.json({ clients: hub.clients.size }));
// HTTP routes can push to WebSocket clients too: POST /announce {"text":"maintenance at 5"}
app.post('/announce', (req, res) => {
  res.json({ sent: hub.broadcast('announcement', { text: String(req.body?.text ?? '') }) });
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
