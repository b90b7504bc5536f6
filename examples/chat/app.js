// The chat app shared by the single-process demo (server.js) and the clustered one
// (../cluster/server.js): the page, two actions, and an online count.
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { createManager, HubError, Code } from 'wshub';

const page = await readFile(new URL('./index.html', import.meta.url));

/**
 * Creates the chat hub and an http.Server serving the page at `/` and the hub at `/ws`.
 * `options` go to createManager (e.g. a cluster `adapter` and a `logger`).
 */
export function createChat(options = {}) {
  const hub = createManager({
    ...options,
    actions: {
      chatSend(data, ctx) {
        const text = typeof data?.text === 'string' ? data.text.trim() : '';
        if (!text || text.length > 500)
          throw new HubError(Code.InvalidParams, 'text must be 1-500 characters');
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

  // cluster.size() is this process's count in memory, and the cluster's with an adapter; the node
  // where someone came or went tells everyone.
  // The count goes out after an await, which may be after hub.close() has returned: pushes then
  // throw (README: hub.close), and a count taken during shutdown is dropped.
  const online = async () => {
    const count = await hub.cluster.size();
    try {
      hub.broadcast('online', { count });
    } catch {
      // closed meanwhile
    }
  };
  hub.on('connection', (client) => {
    client.send('welcome', { id: client.id, name: client.data.name });
    void online();
  });
  hub.on('disconnect', () => void online());

  const server = createServer((req, res) => {
    if (req.method === 'GET' && (req.url === '/' || req.url === '/index.html')) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(page);
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
    }
  });
  hub.handle(server, '/ws');
  return { hub, server };
}
