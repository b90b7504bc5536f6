// Hand-built handshakes and frames over plain TCP, for faults a well-behaved `ws` client cannot
// produce (garbage requests, invalid UTF-8 in a text frame).
import { randomBytes } from 'node:crypto';
import { connect as tcpConnect, type Socket } from 'node:net';
import type { TestContext } from 'node:test';
import { within } from './wait.ts';

const WAIT = 5000;

/** Opens a TCP connection to 127.0.0.1:port; destroyed at test end. */
export function tcp(t: TestContext, port: number): Promise<Socket> {
  const socket = tcpConnect(port, '127.0.0.1');
  socket.on('error', () => {}); // resets surface through 'close'
  t.after(() => socket.destroy());
  return within(
    new Promise<Socket>((resolve, reject) => {
      socket.once('connect', () => resolve(socket));
      socket.once('error', reject);
    }),
    WAIT,
    `tcp connect to ${port}`,
  );
}

/** Everything the server writes until it closes the connection. */
export function readToEnd(socket: Socket, what: string): Promise<string> {
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  return within(
    new Promise<string>((resolve) =>
      socket.once('close', () => resolve(Buffer.concat(chunks).toString('latin1'))),
    ),
    WAIT,
    what,
  );
}

/** Writes `bytes` on a fresh connection and resolves what the server answered before closing. */
export async function exchange(
  t: TestContext,
  port: number,
  bytes: string | Buffer,
  what: string,
): Promise<string> {
  const socket = await tcp(t, port);
  const answer = readToEnd(socket, what);
  socket.write(bytes);
  return answer;
}

/** A well-formed upgrade request; `extra` lines are appended as given. */
export function upgradeRequest(port: number, path = '/ws', extra: string[] = []): string {
  return [
    `GET ${path} HTTP/1.1`,
    `Host: 127.0.0.1:${port}`,
    'Upgrade: websocket',
    'Connection: Upgrade',
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
    'Sec-WebSocket-Version: 13',
    ...extra,
    '',
    '',
  ].join('\r\n');
}

/**
 * A client frame with any opcode and payload; masked, as RFC 6455 requires of clients, unless
 * `masked` is false. `rsv` sets the three reserved bits (0-7).
 */
export function clientFrame(
  opcode: number,
  payload: Buffer,
  fin = true,
  { masked = true, rsv = 0 } = {},
): Buffer {
  const len = payload.length;
  const header = len < 126 ? 2 : len < 65536 ? 4 : 10;
  const maskBytes = masked ? 4 : 0;
  const frame = Buffer.alloc(header + maskBytes + len);
  frame[0] = (fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0x0f);
  const maskBit = masked ? 0x80 : 0;
  if (header === 2) frame[1] = maskBit | len;
  else if (header === 4) {
    frame[1] = maskBit | 126;
    frame.writeUInt16BE(len, 2);
  } else {
    frame[1] = maskBit | 127;
    frame.writeBigUInt64BE(BigInt(len), 2);
  }
  if (!masked) {
    payload.copy(frame, header);
    return frame;
  }
  const mask = randomBytes(4);
  mask.copy(frame, header);
  for (let i = 0; i < len; i++) frame[header + 4 + i] = payload[i]! ^ mask[i & 3]!;
  return frame;
}

export interface RawPeer {
  socket: Socket;
  /** Server frames after the 101 response, as { opcode, payload }, buffered from the start. */
  frames(): Promise<{ opcode: number; payload: Buffer }>;
  /** The same as `frames()`, unbounded: for racing against `ended` inside one `within`. */
  take(): Promise<{ opcode: number; payload: Buffer }>;
  /** Resolves the close frame's code and reason (or 1006 if the TCP connection ended without one). */
  closed(): Promise<{ code: number; reason: string }>;
  /** The same as `closed()`, unbounded: for racing against other waits. */
  readonly ended: Promise<{ code: number; reason: string }>;
}

/** Completes a WebSocket handshake by hand and parses the server's frames. */
export async function rawPeer(t: TestContext, port: number, path = '/ws'): Promise<RawPeer> {
  const socket = await tcp(t, port);
  let buf = Buffer.alloc(0);
  let upgraded = false;
  const queue: { opcode: number; payload: Buffer }[] = [];
  const waiters: ((f: { opcode: number; payload: Buffer }) => void)[] = [];
  let onOpen!: () => void;
  let onFail!: (e: Error) => void;
  const opened = new Promise<void>((resolve, reject) => ((onOpen = resolve), (onFail = reject)));
  let closeFrame: { code: number; reason: string } | undefined;
  const ended = new Promise<void>((resolve) => socket.once('close', () => resolve()));

  const parse = (): void => {
    for (;;) {
      if (buf.length < 2) return;
      const len7 = buf[1]! & 0x7f;
      const header = len7 < 126 ? 2 : len7 === 126 ? 4 : 10;
      if (buf.length < header) return;
      const len =
        len7 < 126 ? len7 : len7 === 126 ? buf.readUInt16BE(2) : Number(buf.readBigUInt64BE(2));
      if (buf.length < header + len) return;
      const frame = { opcode: buf[0]! & 0x0f, payload: buf.subarray(header, header + len) };
      buf = buf.subarray(header + len);
      if (frame.opcode === 8) {
        closeFrame = {
          code: frame.payload.length >= 2 ? frame.payload.readUInt16BE(0) : 1005,
          reason: frame.payload.subarray(2).toString(),
        };
      }
      const waiter = waiters.shift();
      if (waiter) waiter(frame);
      else queue.push(frame);
    }
  };
  socket.on('data', (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    if (!upgraded) {
      const end = buf.indexOf('\r\n\r\n');
      if (end === -1) return;
      const head = buf.subarray(0, end).toString('latin1');
      buf = buf.subarray(end + 4);
      if (!head.startsWith('HTTP/1.1 101'))
        return onFail(new Error(`handshake refused: ${head.split('\r\n')[0]}`));
      upgraded = true;
      onOpen();
    }
    parse();
  });
  socket.write(upgradeRequest(port, path));
  await within(opened, WAIT, 'raw handshake');
  return {
    socket,
    frames: () => {
      const f = queue.shift();
      return f
        ? Promise.resolve(f)
        : within(new Promise((r) => waiters.push(r)), WAIT, 'raw frame');
    },
    take: () => {
      const f = queue.shift();
      return f ? Promise.resolve(f) : new Promise((r) => waiters.push(r));
    },
    closed: async () => {
      await within(ended, WAIT, 'raw peer close');
      return closeFrame ?? { code: 1006, reason: '' };
    },
    ended: ended.then(() => closeFrame ?? { code: 1006, reason: '' }),
  };
}
