// The chat demo: `npm start`, then open http://localhost:8066 in two tabs.
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { createManager, HubError, Code } from 'wshub';

const page = await readFile(new URL('./index.html', import.meta.url));

export const hub = createManager({
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
  // Every client gets a mutable profile; a real app would check a cookie or token here.
  authenticate: () => ({ name: 'guest' }),
});

const online = () => hub.broadcast('online', { count: hub.clients.size });
hub.on('connection', (client) => {
  client.send('welcome', { id: client.id, name: client.data.name });
  online();
});
hub.on('disconnect', online);

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
  console.log(`chat demo on http://localhost:${bound} (hub at ws://localhost:${bound}/ws)`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, async () => {
    await hub.close();
    server.close();
  });
}
