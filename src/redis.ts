// `wshub/redis`: the entry of the Redis cluster adapter (cluster/redis.ts). The root entry never
// imports it, so `redis` stays an optional peer.
export { createRedisAdapter, type RedisAdapterOptions, type RedisClient } from './cluster/redis.js';
export type { ClusterOptions } from './cluster/options.js';
