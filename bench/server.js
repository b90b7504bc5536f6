// One benchmark subject's server, driven over IPC by bench/run.js. Every subject serves the same
// three things: a WebSocket endpoint, `broadcast(seq)` of a ~100-byte JSON push to every client,
// and an `echo` request/reply in wshub's wire format (socket.io: its own ack idiom).
//
//   node bench/server.js <wshub|ws|socketio|floor>
import { createServer as createHttpServer } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { acceptOf, frameOf, FrameReader, pushData } from './wire.js';

const envelope = (actioncode, data, id) => ({ code: 0, msg: 'success', actioncode, data, id });

const subjects = {
  async wshub(entry = 'wshub') {
    const { createManager } = await import(entry);
    // Protocol pings off, as for socket.io below: no subject pings inside a measured window.
    const hub = createManager({ actions: { echo: (data) => data }, heartbeat: false });
    const server = createHttpServer();
    hub.handle(server, '/ws');
    return {
      server,
      path: '/ws',
      broadcast: (seq) => hub.broadcast('push', pushData(seq)),
      served: () => hub.stats().messagesIn,
      clients: () => hub.clients.size,
    };
  },

  async ws() {
    const { WebSocketServer } = await import('ws');
    const server = createHttpServer();
    const wss = new WebSocketServer({ server, path: '/ws', perMessageDeflate: false });
    let served = 0;
    wss.on('connection', (ws) => {
      ws.on('error', () => {});
      ws.on('message', (raw) => {
        served++;
        const m = JSON.parse(raw.toString());
        ws.send(JSON.stringify(envelope(m.actioncode, m.data, m.id)));
      });
    });
    return {
      server,
      path: '/ws',
      // What a user of raw ws writes: encode once, then send(string) to each client.
      broadcast(seq) {
        const text = JSON.stringify(envelope('push', pushData(seq)));
        let n = 0;
        for (const client of wss.clients) {
          client.send(text);
          n++;
        }
        return n;
      },
      served: () => served,
      clients: () => wss.clients.size,
    };
  },

  async socketio() {
    const { Server } = await import('socket.io');
    const server = createHttpServer();
    const io = new Server(server, {
      transports: ['websocket'],
      serveClient: false,
      perMessageDeflate: false,
      // engine.io pings are application frames; keep them out of the measured windows.
      pingInterval: 600_000,
      pingTimeout: 600_000,
    });
    let served = 0;
    io.on('connection', (socket) => {
      socket.on('echo', (data, ack) => {
        served++;
        ack(data);
      });
    });
    return {
      server,
      path: '/socket.io/?EIO=4&transport=websocket',
      broadcast(seq) {
        io.emit('push', envelope('push', pushData(seq)));
        return io.engine.clientsCount;
      },
      served: () => served,
      clients: () => io.engine.clientsCount,
    };
  },

  // The floor: no library. A minimal handshake, then the same pre-built frame written to every
  // socket, each socket corked until the end of the loop turn (what the kernel costs).
  // `floor:plain` writes each frame at once instead (one syscall per frame, as raw ws does).
  // `floor:lossy` skips one client per broadcast: the harness's self-test, which must fail.
  async floor(variant) {
    const sockets = new Set();
    let served = 0;
    const corked = [];
    const flush = () => {
      for (const s of corked) s.uncork();
      corked.length = 0;
    };
    const write = (socket, bytes) => {
      if (variant === 'plain') return void socket.write(bytes);
      if (socket.writableCorked === 0) {
        socket.cork();
        if (corked.push(socket) === 1) setImmediate(flush);
      }
      socket.write(bytes);
    };
    const server = createNetServer((socket) => {
      socket.setNoDelay(true);
      socket.on('error', () => {});
      socket.on('close', () => sockets.delete(socket));
      let head = '';
      const onHead = (chunk) => {
        head += chunk.toString('latin1');
        const end = head.indexOf('\r\n\r\n');
        if (end === -1) return;
        const key = /sec-websocket-key:\s*(\S+)/i.exec(head)?.[1];
        if (!key) return void socket.destroy();
        socket.off('data', onHead);
        socket.write(
          'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
            `Sec-WebSocket-Accept: ${acceptOf(key)}\r\n\r\n`,
        );
        sockets.add(socket);
        const reader = new FrameReader((opcode, buf, start, end) => {
          if (opcode !== 1 && opcode !== 2) return;
          served++;
          const m = JSON.parse(buf.toString('utf8', start, end));
          write(socket, frameOf(JSON.stringify(envelope(m.actioncode, m.data, m.id))));
        });
        socket.on('data', (c) => reader.push(c));
        const rest = Buffer.from(head.slice(end + 4), 'latin1');
        if (rest.length) reader.push(rest);
      };
      socket.on('data', onHead);
    });
    return {
      server,
      path: '/',
      broadcast(seq) {
        const frame = frameOf(JSON.stringify(envelope('push', pushData(seq))));
        let skip = variant === 'lossy' ? seq % sockets.size : -1;
        for (const socket of sockets) if (skip-- !== 0) write(socket, frame);
        return sockets.size;
      },
      served: () => served,
      clients: () => sockets.size,
    };
  },
};

async function main() {
  // `wshub:<path to a build's index.js>` runs another build of wshub, for A/B runs of a change.
  const [name, entry] = process.argv[2].split(/:(.*)/s);
  if (!subjects[name]) throw new Error(`unknown subject ${name}; one of ${Object.keys(subjects)}`);
  const subject = await subjects[name](entry);
  subject.server.listen(0, '127.0.0.1', 2048);
  await new Promise((resolve) => subject.server.once('listening', resolve));
  let mark;
  const handlers = {
    mark() {
      mark = { cpu: process.cpuUsage(), at: process.hrtime.bigint(), served: subject.served() };
      return {};
    },
    read() {
      const cpu = process.cpuUsage(mark.cpu);
      return {
        cpu: cpu.user + cpu.system,
        wall: Number(process.hrtime.bigint() - mark.at) / 1e3,
        served: subject.served() - mark.served,
        clients: subject.clients(),
      };
    },
    mem() {
      for (let i = 0; i < 4; i++) globalThis.gc();
      const { rss, heapUsed, external, arrayBuffers } = process.memoryUsage();
      return { rss, heapUsed, external, arrayBuffers, clients: subject.clients() };
    },
    // `turns` loop turns of `perTurn` broadcasts each; answers once the last turn's writes are out.
    fan({ turns, perTurn, seq }) {
      return new Promise((resolve) => {
        let queued = 0;
        let left = turns;
        const turn = () => {
          if (left-- === 0) return resolve({ queued });
          for (let k = 0; k < perTurn; k++) queued += subject.broadcast(seq++);
          setImmediate(turn);
        };
        turn();
      });
    },
    exit() {
      setImmediate(() => process.exit(0));
      return {};
    },
  };
  process.on('message', async (msg) => {
    const reply = await handlers[msg.t](msg);
    process.send({ ...reply, t: msg.t, seq: msg.seq });
  });
  process.send({ t: 'listening', port: subject.server.address().port, path: subject.path });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
