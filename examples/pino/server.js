// wshub logging through pino: `node examples/pino/server.js | npx pino-pretty` (pino-pretty optional).
// wshub calls the logger pino-style, `logger.error({ err, clientId }, 'wshub: error')`, so a pino
// logger (or a child of your app's logger) goes straight into the `logger` option.
import { createServer } from 'node:http';
import pino from 'pino';
import { createManager } from 'wshub';

const log = pino({ level: process.env.LOG_LEVEL ?? 'info' });

const hub = createManager({
  logger: log.child({ component: 'wshub' }),
  actions: {
    // {"actioncode":"echo","data":"hi","id":1}
    echo: (data) => data,
    // A bug in a handler: the client gets {"code":4,"msg":"server error"}; the stack goes to pino.
    crash() {
      throw new Error('handler bug');
    },
  },
});

hub.on('connection', (client, req) => {
  log.info(
    { clientId: client.id, ip: client.remoteAddress, ua: req?.headers['user-agent'] },
    'client connected',
  );
});
hub.on('disconnect', (client, code, reason) => {
  log.info({ clientId: client.id, code, reason }, 'client disconnected');
});

const server = createServer((req, res) => res.writeHead(404).end());
hub.handle(server, '/ws');

server.listen(Number(process.env.PORT ?? 8066), process.env.HOST, () => {
  const { port } = server.address();
  log.info({ url: `http://localhost:${port}`, ws: `ws://localhost:${port}/ws` }, 'listening');
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, async () => {
    await hub.close();
    server.close();
  });
}
