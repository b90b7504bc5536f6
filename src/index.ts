// wshub's public surface: everything a user imports, by name.
export { createManager } from './manager.js';
export { HubError, Code, CloseCode } from './errors.js';
export { toCamel, toSnake } from './case.js';
export { InMemoryAdapter } from './adapter.js';
export { ClusterAdapter } from './cluster.js';

export type { Manager, ClientsView, ClusterView, CloseOptions, RegisterInit } from './manager.js';
export type { Client } from './client.js';
export type { Adapter, AdapterFactory, AdapterHost } from './adapter.js';
export type { ClusterOptions } from './cluster.js';
export type { Frame, RequestId } from './protocol.js';
export type { ActionCode, CamelCase, SnakeCase } from './case.js';
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
} from './types.js';
export type { StandardSchemaV1 } from './standard-schema.js';
