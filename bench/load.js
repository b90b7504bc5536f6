// The load generator, driven over IPC by bench/run.js: raw TCP sockets speaking just enough
// RFC 6455 (and engine.io/socket.io framing) to connect, count pushes and run request/reply.
// Cheap on purpose: it splits frames without copying and parses only what it checks.
import { connect } from 'node:net';
import { performance } from 'node:perf_hooks';
import { FrameReader, frameOf, TEXT, upgradeRequest } from './wire.js';

const PONG = (payload) => frameOf(payload, { opcode: 10, masked: true });
const SIO_CONNECT = frameOf('40', { masked: true });
const SIO_PONG = frameOf('3', { masked: true });

let conns = [];
let sio = false;
let total = 0; // pushes received, all connections
let expectTotal = 0;
let expectSeq = 0;
let bad = 0; // frames that failed a content check, or unexpected closes
const problems = [];
let rr; // request/reply state while running
let flood; // the flooder's state while running

const echoBody = (id) =>
  sio
    ? `42${id}["echo",{"seq":${id},"text":"${TEXT}"}]`
    : `{"actioncode":"echo","data":{"seq":${id},"text":"${TEXT}"},"id":${id}}`;

function problem(text) {
  bad++;
  if (problems.length < 5) problems.push(text);
}

function reply(msg, extra) {
  process.send({ ...extra, t: msg.t, seq: msg.seq });
}

class Conn {
  count = 0;
  checked = false;
  ready = false;
  closed = false;
  nextId = 1;
  sentAt = 0;
  constructor(socket, onReady) {
    this.socket = socket;
    this.onReady = onReady;
    this.reader = new FrameReader((op, buf, s, e) => this.frame(op, buf, s, e));
  }

  frame(opcode, buf, start, end) {
    if (opcode === 9) return void this.socket.write(PONG(buf.subarray(start, end)));
    if (opcode === 8) {
      this.closed = true;
      return problem(`close frame ${buf.readUInt16BE(start)}`);
    }
    if (opcode !== 1 && opcode !== 2) return;
    if (this === flood?.conn) return this.floodReply();
    if (sio) {
      const c0 = buf[start];
      if (c0 === 0x32) return void this.socket.write(SIO_PONG); // engine.io ping "2"
      if (!this.ready) {
        if (c0 === 0x30) return void this.socket.write(SIO_CONNECT); // engine.io open "0{…}"
        if (c0 === 0x34 && buf[start + 1] === 0x30) return this.onReady(); // "40{sid}"
        return problem(`unexpected handshake frame ${buf.toString('utf8', start, end)}`);
      }
      // "42[…]" is an event (our push), "43<id>[…]" an ack (our reply)
      if (buf[start + 1] === 0x33) return this.answer(buf, start, end);
      return this.push(buf, start + 2, end);
    }
    if (this.sentAt) return this.answer(buf, start, end);
    this.push(buf, start, end);
  }

  push(buf, start, end) {
    this.count++;
    if (!this.checked) {
      this.checked = true;
      try {
        let m = JSON.parse(buf.toString('utf8', start, end));
        if (sio) m = m[0] === 'push' ? m[1] : undefined;
        if (m?.actioncode !== 'push' || m.data?.text !== TEXT) throw new Error('wrong push');
      } catch (err) {
        problem(`${err.message}: ${buf.toString('utf8', start, end)}`);
      }
    }
    if (++total === expectTotal) {
      expectTotal = 0;
      process.send({ t: 'expect', seq: expectSeq, total });
    }
  }

  request() {
    const id = this.nextId++;
    this.sentAt = performance.now();
    this.socket.write(frameOf(echoBody(id), { masked: true }));
  }

  /** The flooder: counts its replies, and writes the next batch once one batch is answered. */
  floodReply() {
    flood.replies++;
    if (++flood.answered >= flood.batch.count && flood.running) {
      flood.answered = 0;
      this.socket.write(flood.batch.bytes);
    }
  }

  answer(buf, start, end) {
    const latency = performance.now() - this.sentAt;
    this.sentAt = 0;
    const text = buf.toString('utf8', start, end);
    const want = this.nextId - 1;
    let ok;
    try {
      if (sio) {
        const open = text.indexOf('[');
        ok = Number(text.slice(2, open)) === want && JSON.parse(text.slice(open))[0].text === TEXT;
      } else {
        const m = JSON.parse(text);
        ok = m.id === want && m.code === 0 && m.data.text === TEXT;
      }
    } catch {
      ok = false;
    }
    if (!ok) problem(`wrong reply to ${want}: ${text}`);
    if (!rr) return;
    rr.latencies.push(latency);
    if (rr.running) this.request();
  }
}

function open(port, path) {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1', noDelay: true });
    let head = '';
    let conn;
    const fail = (err) => (conn?.ready ? problem(`socket ${err.message}`) : reject(err));
    socket.on('error', fail);
    socket.on('close', () => {
      if (conn?.ready && !conn.closed) {
        conn.closed = true;
        if (!stopping) problem('socket closed by the server');
      } else if (!conn?.ready) reject(new Error('closed during handshake'));
    });
    const onHead = (chunk) => {
      head += chunk.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end === -1) return;
      if (!head.startsWith('HTTP/1.1 101')) return reject(new Error(head.split('\r\n')[0]));
      socket.off('data', onHead);
      conn = new Conn(socket, () => {
        conn.ready = true;
        resolve(conn);
      });
      socket.on('data', (c) => conn.reader.push(c));
      if (!sio) conn.onReady();
      const rest = Buffer.from(head.slice(end + 4), 'latin1');
      if (rest.length) conn.reader.push(rest);
    };
    socket.on('data', onHead);
    socket.write(upgradeRequest(port, path));
  });
}

let stopping = false;
let mark;

const handlers = {
  // Opens n connections, `concurrency` handshakes in flight at a time.
  async connect({ n, port, path, concurrency }) {
    sio = path.startsWith('/socket.io/');
    const started = performance.now();
    let next = 0;
    const worker = async () => {
      while (next < n) {
        next++;
        conns.push(await open(port, path));
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
    return { wall: (performance.now() - started) * 1e3, connected: conns.length };
  },
  // Answers (as a separate 'expect' message) once `total` pushes have arrived in all.
  expect({ total: want, seq }) {
    expectSeq = seq;
    if (total >= want) process.send({ t: 'expect', seq, total });
    else expectTotal = want;
    return undefined;
  },
  // After a quiet moment, checks that every connection got exactly `perConn` pushes.
  async verify({ perConn }) {
    await new Promise((r) => setTimeout(r, 100));
    for (const c of conns) {
      if (c.count !== perConn) problem(`a connection got ${c.count} pushes, expected ${perConn}`);
      if (c.closed) problem('a connection closed');
    }
    return { ok: bad === 0, total, problems };
  },
  // Every connection from `from` on keeps one echo request in flight.
  rrStart({ from = 0 } = {}) {
    rr = { running: true, latencies: [] };
    for (const c of conns.slice(from)) c.request();
    return {};
  },
  // Connection 0 floods: `batch` echo requests in one TCP write, the next batch as soon as one
  // batch is answered, so two batches are in flight (an honest pipelining client that reads).
  floodStart({ batch }) {
    const bytes = Buffer.concat(
      Array.from({ length: batch }, (_, i) => frameOf(echoBody(i + 1), { masked: true })),
    );
    flood = {
      conn: conns[0],
      batch: { count: batch, bytes },
      answered: 0,
      replies: 0,
      running: true,
    };
    flood.conn.socket.write(bytes);
    flood.conn.socket.write(bytes);
    return {};
  },
  floodStop() {
    flood.running = false;
    return {};
  },
  mark() {
    mark = { cpu: process.cpuUsage(), at: performance.now(), floodReplies: flood?.replies };
    if (rr) rr.latencies = [];
    return {};
  },
  read() {
    const cpu = process.cpuUsage(mark.cpu);
    const out = { cpu: cpu.user + cpu.system, wall: (performance.now() - mark.at) * 1e3 };
    if (flood) out.floodReplies = flood.replies - (mark.floodReplies ?? 0);
    if (rr) {
      const l = Float64Array.from(rr.latencies).sort();
      const q = (p) => (l.length ? l[Math.min(l.length - 1, Math.floor(p * l.length))] * 1e3 : NaN);
      Object.assign(out, { replies: l.length, p50: q(0.5), p99: q(0.99), ok: bad === 0, problems });
    }
    return out;
  },
  // Closes every connection (for runs that connect in several batches).
  async reset() {
    stopping = true;
    await Promise.all(
      conns.map(
        (c) =>
          new Promise((r) =>
            c.socket.destroyed ? r() : (c.socket.once('close', r), c.socket.destroy()),
          ),
      ),
    );
    conns = [];
    total = 0;
    stopping = false;
    return {};
  },
  rrStop() {
    rr.running = false;
    return {};
  },
  exit() {
    stopping = true;
    setImmediate(() => process.exit(0));
    return {};
  },
};

process.on('message', async (msg) => {
  try {
    const out = await handlers[msg.t](msg);
    if (out) reply(msg, out);
  } catch (err) {
    reply(msg, { error: String(err?.stack ?? err) });
  }
});
process.send({ t: 'ready' });
