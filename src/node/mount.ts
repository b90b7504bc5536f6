// handle(server, path): one 'upgrade' listener per server, shared by every manager mounted on it,
// routing by pathname; an upgrade to a path nobody serves gets 404 instead of hanging.
import type { IncomingMessage, Server } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import { refuse } from './upgrade.js';

/** What a route leads to: a transport's upgrade entry. */
export interface Upgrader {
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
}

// server → path → transport
const routes = new WeakMap<object, Map<string, Upgrader>>();

function pathOf(url = '/'): string {
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

function onUpgrade(this: Server, req: IncomingMessage, socket: Duplex, head: Buffer): void {
  const upgrader = routes.get(this)?.get(pathOf(req.url));
  if (upgrader) return upgrader.handleUpgrade(req, socket, head);
  // Another listener may serve this path; only when we are alone is nobody going to answer.
  if (this.listenerCount('upgrade') === 1) refuse(socket, 404);
}

/**
 * Routes upgrades to `path` on `server` to `upgrader`.
 * @returns a function that removes the route (and the listener with the server's last route)
 * @throws TypeError for a bad path or server; Error if `path` on `server` is taken
 */
export function mount(server: Server | HttpsServer, path: string, upgrader: Upgrader): () => void {
  if (typeof path !== 'string' || !path.startsWith('/')) {
    throw new TypeError(`path must be a string starting with "/", got ${JSON.stringify(path)}`);
  }
  if (typeof (server as Partial<Server> | null)?.on !== 'function') {
    throw new TypeError('handle() needs an http.Server or https.Server');
  }
  let table = routes.get(server);
  if (table?.has(path)) throw new Error(`a manager already handles ${path} on this server`);
  if (!table) {
    table = new Map();
    routes.set(server, table);
    server.on('upgrade', onUpgrade);
  }
  table.set(path, upgrader);
  let mounted = true;
  return () => {
    if (!mounted) return;
    mounted = false;
    table.delete(path);
    if (table.size > 0) return;
    routes.delete(server);
    server.off('upgrade', onUpgrade);
  };
}
