// The chat demo: `npm start`, then open http://localhost:8066 in two tabs.
import { createChat } from './app.js';

export const { hub, server } = createChat();

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
