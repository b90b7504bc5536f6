// wshub metrics for Prometheus with prom-client: `node examples/metrics/server.js`, then
// `curl http://localhost:8066/metrics`. Counters come from `hub.stats()` at scrape time (no
// per-message work) and from the `connection` / `disconnect` events.
import { createServer } from 'node:http';
import { Registry, Counter, Gauge, collectDefaultMetrics } from 'prom-client';
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

const registry = new Registry();
collectDefaultMetrics({ register: registry });

new Gauge({
  name: 'wshub_clients',
  help: 'Clients connected to this process',
  registers: [registry],
  collect() {
    this.set(hub.stats().clients);
  },
});
// Totals kept by wshub itself, exposed as Prometheus counters when scraped.
for (const [key, name, help] of [
  ['messagesIn', 'wshub_messages_received_total', 'Messages received from clients'],
  [
    'messagesOut',
    'wshub_messages_sent_total',
    'Frames queued for clients (a broadcast to n clients counts n)',
  ],
  ['bytesIn', 'wshub_received_bytes_total', 'Bytes received from clients'],
  ['bytesOut', 'wshub_sent_bytes_total', 'Bytes queued for clients'],
  ['dropped', 'wshub_dropped_total', 'Frames skipped because a client was too slow'],
  ['errors', 'wshub_errors_total', 'Handler failures and socket errors'],
]) {
  new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      this.reset();
      this.inc(hub.stats()[key]);
    },
  });
}

const connections = new Counter({
  name: 'wshub_connections_total',
  help: 'Clients connected',
  registers: [registry],
});
const disconnections = new Counter({
  name: 'wshub_disconnections_total',
  help: 'Clients disconnected, by close code',
  labelNames: ['code'],
  registers: [registry],
});
hub.on('connection', () => connections.inc());
hub.on('disconnect', (client, code) => disconnections.inc({ code: String(code) }));

const server = createServer((req, res) => {
  if (req.method !== 'GET' || req.url !== '/metrics') return void res.writeHead(404).end();
  registry.metrics().then(
    (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
    () => res.writeHead(500).end(),
  );
});
hub.handle(server, '/ws');

server.listen(Number(process.env.PORT ?? 8066), process.env.HOST, () => {
  const { port } = server.address();
  console.log(
    `listening on http://localhost:${port} (metrics at /metrics, hub at ws://localhost:${port}/ws)`,
  );
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, async () => {
    await hub.close();
    server.close();
  });
}
