// The bytes of RFC 6455 that the load generator and the net floor need, and nothing else:
// a handshake, frame building, and a frame splitter that does not copy payloads it can skip.
import { createHash } from 'node:crypto';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
export const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';

export const TEXT = 'the quick brown fox jumps!!';
/** The push every subject sends; in wshub's envelope its JSON is 100 bytes while seq < 1000. */
export const pushData = (seq) => ({ seq, text: TEXT });

/** RFC 6455 §4.2.2: Sec-WebSocket-Accept for a Sec-WebSocket-Key. */
export function acceptOf(key) {
  return createHash('sha1')
    .update(key + GUID)
    .digest('base64');
}

export function upgradeRequest(port, path) {
  return (
    `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`
  );
}

/**
 * A frame. Client frames must be masked (RFC 6455 §5.3); a zero key leaves the payload as is, so
 * the client pays nothing for masking and every server unmasks the same way.
 */
export function frameOf(payload, { opcode = 1, masked = false } = {}) {
  const body = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const len = body.length;
  const ext = len < 126 ? 0 : len < 65536 ? 2 : 8;
  const mask = masked ? 4 : 0;
  const out = Buffer.alloc(2 + ext + mask + len);
  out[0] = 0x80 | opcode;
  out[1] = (masked ? 0x80 : 0) | (ext === 0 ? len : ext === 2 ? 126 : 127);
  if (ext === 2) out.writeUInt16BE(len, 2);
  if (ext === 8) out.writeBigUInt64BE(BigInt(len), 2);
  body.copy(out, 2 + ext + mask);
  return out;
}

/**
 * Splits a byte stream into frames: calls `onFrame(opcode, buf, start, end)` for each complete
 * frame (payload unmasked in place if masked). Keeps only an incomplete tail between chunks.
 */
export class FrameReader {
  rest = null;
  constructor(onFrame) {
    this.onFrame = onFrame;
  }

  push(chunk) {
    const buf = this.rest ? Buffer.concat([this.rest, chunk]) : chunk;
    const n = buf.length;
    let off = 0;
    while (n - off >= 2) {
      const b1 = buf[off + 1];
      let len = b1 & 0x7f;
      let head = 2;
      if (len === 126) {
        if (n - off < 4) break;
        len = buf.readUInt16BE(off + 2);
        head = 4;
      } else if (len === 127) {
        if (n - off < 10) break;
        len = buf.readUInt32BE(off + 2) * 2 ** 32 + buf.readUInt32BE(off + 6);
        head = 10;
      }
      const masked = b1 & 0x80;
      if (masked) head += 4;
      if (n - off < head + len) break;
      const start = off + head;
      if (masked) {
        const m = off + head - 4;
        for (let i = 0; i < len; i++) buf[start + i] ^= buf[m + (i & 3)];
      }
      this.onFrame(buf[off] & 0x0f, buf, start, start + len);
      off = start + len;
    }
    this.rest = off < n ? buf.subarray(off) : null;
  }
}
