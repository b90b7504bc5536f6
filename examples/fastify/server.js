// wshub in a Fastify 5 app with @fastify/websocket 11: `node examples/fastify/server.js`,
// then connect to ws://localhost:8066/ws?token=demo.
// Fastify owns the handshake here, so its route hooks do what `authenticate` does for
// `hub.handle()`: refuse before any WebSocket exists. The route handler gets the `ws` socket
// (v11 passes `(socket, request)`) and hands it to `hub.register()`.
import Fastify from 'fastify';
import websocket from '@fastify/websocket';
import { createManager, HubError, Code } from 'wshub';

const TOKEN = process.env.TOKEN ?? 'demo';

const hub = createManager({
  actions: {
    // {"actioncode":"whoami","id":1}
    whoami(data, ctx) {
      return { id: ctx.client.id, user: ctx.client.data.user };
    },
    // {"actioncode":"chat_send","data":{"text":"hi"},"id":2}
    chatSend(data, ctx) {
      if (typeof data?.text !== 'string') throw new HubError(Code.InvalidParams, 'text required');
      ctx.hub.broadcast('chat_message', { from: ctx.client.data.user, text: data.text });
      return { ok: true };
    },
  },
});

const app = Fastify();
// ws's default maxPayload is 100 MiB; keep wshub's 1 MiB default on sockets Fastify accepts.
await app.register(websocket, { options: { maxPayload: 1024 * 1024 } });

app.get('/health', async () => ({ clients: hub.clients.size }));
app.get(
  '/ws',
  {
    websocket: true,
    // A reply sent from a hook refuses the upgrade with that HTTP status.
    preValidation: async (req, reply) => {
      if (req.query.token !== TOKEN) await reply.code(401).send({ error: 'bad token' });
    },
  },
  (socket, req) => {
    hub.register(socket, { data: { user: req.query.user ?? 'guest' } });
  },
);
app.addHook('preClose', async () => {
  await hub.close();
});

const url = await app.listen({
  port: Number(process.env.PORT ?? 8066),
  host: process.env.HOST ?? 'localhost',
});
console.log(`listening on ${url} (hub at ${url.replace(/^http/, 'ws')}/ws?token=${TOKEN})`);

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => app.close());
}
