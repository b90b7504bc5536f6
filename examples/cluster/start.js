// Two chat nodes sharing one chat through Redis, in one command:
//
//   npm run build && node examples/cluster/start.js
//
// then open http://localhost:8066 and http://localhost:8067. REDIS_URL picks the Redis
// (default redis://127.0.0.1:6379); Ctrl-C stops both nodes.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const server = fileURLToPath(new URL('./server.js', import.meta.url));
const ports = [8066, 8067];
const nodes = ports.map((port) =>
  spawn(process.execPath, [server], {
    env: { ...process.env, PORT: String(port) },
    stdio: 'inherit',
  }),
);
let stopping = false;
const stop = (signal) => {
  stopping = true;
  for (const node of nodes) node.kill(signal);
};
for (const node of nodes) {
  node.once('exit', (code) => {
    if (!stopping) {
      console.error(`a chat node exited (${code}); stopping the other`);
      stop('SIGTERM');
      process.exitCode = code || 1;
    }
  });
}
process.once('SIGINT', () => stop('SIGINT'));
process.once('SIGTERM', () => stop('SIGTERM'));
