// wshub on a bare node:http server: `node examples/http/server.js`, then connect to ws://localhost:8066/ws.
import { createServer } from 'node:http';
import { createManager, HubError, Code } from 'wshub';

const hub = createManager({
  actions: {
    // {"actioncode":"join","data":{"room":"lobby"},"id":1}
    join(data, ctx) {
      if (typeof data?.room !== 'string' || !data.room)
        throw new HubError(Code.InvalidParams, 'room required');
      ctx.hub.join(ctx.client.id, data.room);
      return { room: data.room };
    },
    // {"actioncode":"say","data":{"room":"lobby","text":"hi"},"id":2}
    say(data, ctx) {
      if (typeof data?.text !== 'string') throw new HubError(Code.InvalidParams, 'text required');
      const sent = ctx.hub.broadcast(
        'said',
        { from: ctx.client.id, text: data.text },
        { rooms: [data.room] },
      );
      return { sent };
    },
  },
});

const server = createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain' }).end('wshub: connect a WebSocket to /ws\n');
});
hub.handle(server, '/ws');

server.listen(Number(process.env.PORT ?? 8066), process.env.HOST, () => {
  const { port } = server.address();
  console.log(`listening on http://localhost:${port} (hub at ws://localhost:${port}/ws)`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, async () => {
    await hub.close();
    server.close();
  });
}
