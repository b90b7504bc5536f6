// Writing frames the way uWebSockets and engine.io do: one RFC 6455 frame per fan-out, the same
// bytes written to every socket, and each socket corked until the end of the loop turn so a burst
// costs one syscall per socket. The only code that touches `ws` internals lives here.
import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import type { Frame } from '../core/protocol.js';

/** ws's Sender state when nothing is queued (ws/lib/sender.js `DEFAULT`). */
const SENDER_IDLE = 0;

interface WsInternals {
  _socket?: Socket;
  _sender?: { _state?: number };
  _extensions?: Record<string, unknown>;
}

/**
 * The raw socket of a `ws` WebSocket if frames may be written to it directly, else `undefined`
 * (then callers use `ws.send`). Direct writes are safe only when ws would write the same bytes
 * synchronously itself: no permessage-deflate, and a Sender we can ask whether it has a queue.
 * A test asserts this returns a socket for hub connections, so a `ws` upgrade that renames these
 * internals fails loudly instead of silently slowing down.
 */
export function rawSocket(ws: WebSocket): Socket | undefined {
  const w = ws as unknown as WsInternals;
  const socket = w._socket;
  if (!socket || typeof socket.cork !== 'function' || typeof socket.write !== 'function')
    return undefined;
  if (typeof w._sender?._state !== 'number') return undefined;
  if (w._extensions && Object.keys(w._extensions).length > 0) return undefined;
  return socket;
}

/** Whether ws's Sender has nothing queued, so a direct write keeps frame order. */
export function senderIdle(ws: WebSocket): boolean {
  return (ws as unknown as WsInternals)._sender?._state === SENDER_IDLE;
}

/** The peer address of a `ws` WebSocket adopted without its upgrade request. */
export function remoteAddressOf(ws: WebSocket): string | undefined {
  return (ws as unknown as WsInternals)._socket?.remoteAddress;
}

/** The unmasked text frame (RFC 6455 §5.2) for `frame.text`, built once and cached on the frame. */
export function wireOf(frame: Frame): Buffer {
  if (frame.wire) return frame.wire;
  const length = Buffer.byteLength(frame.text);
  const header = length < 126 ? 2 : length < 65536 ? 4 : 10;
  const wire = Buffer.allocUnsafe(header + length);
  wire[0] = 0x81; // FIN + opcode 1 (text)
  if (header === 2) {
    wire[1] = length;
  } else if (header === 4) {
    wire[1] = 126;
    wire.writeUInt16BE(length, 2);
  } else {
    wire[1] = 127;
    wire.writeUInt32BE(Math.floor(length / 2 ** 32), 2);
    wire.writeUInt32BE(length >>> 0, 6);
  }
  wire.write(frame.text, header, 'utf8');
  frame.wire = wire;
  return wire;
}

/** The payload part of a wire frame (for transports that frame it themselves). */
export function payloadOf(wire: Buffer): Buffer {
  const len7 = wire[1]! & 0x7f;
  return wire.subarray(len7 < 126 ? 2 : len7 === 126 ? 4 : 10);
}

const corked: Socket[] = [];
let flushScheduled = false;

function flush(): void {
  flushScheduled = false;
  for (const socket of corked.splice(0)) socket.uncork();
}

/**
 * Writes `wire` to `socket`, corking it until the end of this loop turn (setImmediate), so every
 * frame queued for a socket within one turn leaves in one write.
 */
export function corkedWrite(socket: Socket, wire: Buffer): void {
  // ws corks only around its own synchronous two-part writes, so a count of 0 means not ours yet.
  if (socket.writableCorked === 0) {
    socket.cork();
    corked.push(socket);
    if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(flush);
    }
  }
  socket.write(wire);
}
