// wshub's public surface: everything a user imports, by name; and createManager, which puts the
// transport-agnostic core (core/) on the ws edge (node/).
import { Manager } from './core/manager.js';
import type { ManagerOptions } from './core/types.js';
import { createTransport } from './node/transport.js';

export { HubError, Code, CloseCode } from './core/errors.js';
export { toCamel, toSnake } from './core/case.js';
export { InMemoryAdapter } from './core/adapter.js';
export { Frame } from './core/protocol.js';
export { ClusterAdapter } from './cluster/cluster-adapter.js';

export type { Manager, ClientsView, ClusterView, CloseOptions } from './core/manager.js';
export type { RegisterInit } from './core/connection.js';
export type { Client } from './core/client.js';
export type { Adapter, AdapterFactory, AdapterHost } from './core/adapter.js';
export type { ClusterOptions } from './cluster/options.js';
export type { RequestId } from './core/protocol.js';
export type { ActionCode, CamelCase, SnakeCase } from './core/case.js';
export type {
  ActionContext,
  Actions,
  SchemaAction,
  FanoutAction,
  Target,
  Stats,
  Logger,
  ManagerOptions,
  ManagerEvents,
} from './core/types.js';
export type { StandardSchemaV1 } from './core/standard-schema.js';

/**
 * Creates a hub: the registry of clients, action dispatch and fan-out. Mount it with
 * `handle(server, path)`.
 *
 * @throws TypeError / RangeError for a bad option or an action key that does not round-trip
 * @example
 * const hub = createManager({
 *   actions: {
 *     chatSend(data: { text: string }, ctx) {
 *       ctx.hub.broadcast('chat_message', { from: ctx.client.id, text: data.text });
 *       return { ok: true };
 *     },
 *   },
 * });
 * hub.handle(server, '/ws');
 */
export function createManager<Schemas = Record<string, never>, Data = undefined>(
  options: ManagerOptions<Schemas, Data> = {},
): Manager<Data> {
  return new Manager<Data>(options as ManagerOptions<unknown, Data>, createTransport);
}
