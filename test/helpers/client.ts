import type { IncomingMessage } from 'node:http';
import type { TestContext } from 'node:test';
import { WebSocket, type ClientOptions } from 'ws';
import { within } from './wait.ts';

export interface Reply {
  code: number;
  msg: string;
  actioncode: string;
  data: unknown;
  id?: string | number;
}

/** A push as the hub encodes it: `{code:0,msg:"success",actioncode,data}`. */
export const push = (actioncode: string, data: unknown): Reply => ({
  code: 0,
  msg: 'success',
  actioncode,
  data,
});

/** A success reply to request `id`: a push that echoes the id. */
export const okReply = (actioncode: string, data: unknown, id: string | number): Reply => ({
  ...push(actioncode, data),
  id,
});

/** An `id` option for tests: the upgrade URL's `?id=`, else `'anon'`. */
export const idFromQuery = (req: IncomingMessage): string =>
  new URL(req.url ?? '/', 'http://x').searchParams.get('id') ?? 'anon';

const WAIT = 5000;

/** A real `ws` client that buffers every frame from construction, so nothing is missed. */
export class TestClient {
  readonly ws: WebSocket;
  readonly frames: string[] = [];
  #waiters: ((frame: string) => void)[] = [];
  /** request() calls waiting for the reply with their id */
  readonly #replies = new Map<string | number, (reply: Reply) => void>();
  #nextId = 1;
  readonly #closed: Promise<{ code: number; reason: string }>;
  readonly opened: Promise<void>;

  constructor(url: string, options?: ClientOptions & { protocols?: string | string[] }) {
    this.ws = new WebSocket(url, options?.protocols, options);
    this.ws.on('message', (data) => {
      const frame = data.toString();
      if (this.#replies.size > 0) {
        const reply = JSON.parse(frame) as Reply;
        const pending = reply.id === undefined ? undefined : this.#replies.get(reply.id);
        if (pending) {
          this.#replies.delete(reply.id!);
          return pending(reply);
        }
      }
      const waiter = this.#waiters.shift();
      if (waiter) waiter(frame);
      else this.frames.push(frame);
    });
    this.ws.on('error', () => {}); // failures surface through `opened` / `closed`
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('unexpected-response', (_req, res) =>
        reject(new Error(`HTTP ${res.statusCode}`)),
      );
      this.ws.once('error', reject);
    });
    this.opened.catch(() => {});
    this.#closed = new Promise((resolve) => {
      this.ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }));
    });
  }

  /** The next frame, decoded. */
  async next(what = 'next frame'): Promise<Reply> {
    const buffered = this.frames.shift();
    const raw =
      buffered ?? (await within(new Promise<string>((r) => this.#waiters.push(r)), WAIT, what));
    return JSON.parse(raw) as Reply;
  }

  /** Sends a raw string or buffer (binary frame). */
  raw(data: string | Buffer, binary = typeof data !== 'string'): void {
    this.ws.send(data, { binary });
  }

  /** Sends `{actioncode, data, id}` (plus `extra` fields) and resolves the reply with that id. */
  async request(
    actioncode: string,
    data?: unknown,
    extra: Record<string, unknown> = {},
  ): Promise<Reply> {
    const id = this.#nextId++;
    this.ws.send(JSON.stringify({ actioncode, data, id, ...extra }));
    // Other frames stay queued, in order, for later assertions.
    const reply = new Promise<Reply>((resolve) => this.#replies.set(id, resolve));
    return within(reply, WAIT, `reply to ${actioncode} #${id}`).finally(() =>
      this.#replies.delete(id),
    );
  }

  /** Barrier: a heart_beat round trip; every frame queued before it has arrived when this resolves. */
  async barrier(): Promise<Reply[]> {
    const id = `barrier-${this.#nextId++}`;
    this.ws.send(JSON.stringify({ actioncode: 'heart_beat', id }));
    const before: Reply[] = [];
    for (;;) {
      const reply = await this.next(`barrier ${id}`);
      if (reply.id === id) return before;
      before.push(reply);
    }
  }

  closed(what = 'close'): Promise<{ code: number; reason: string }> {
    return within(this.#closed, WAIT, what);
  }

  close(): void {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING)
      this.ws.terminate();
  }
}

/** Opens a client and waits for the handshake; terminated at test end. */
export async function connect(
  t: TestContext,
  url: string,
  options?: ConstructorParameters<typeof TestClient>[1],
): Promise<TestClient> {
  const client = new TestClient(url, options);
  t.after(() => client.close());
  await within(client.opened, WAIT, `open ${url}`);
  return client;
}

/** Attempts an upgrade that should be refused; resolves the HTTP status. */
export function refusedStatus(
  url: string,
  options?: ClientOptions & { protocols?: string | string[] },
): Promise<number> {
  const ws = new WebSocket(url, options?.protocols, options);
  ws.on('error', () => {});
  return within(
    new Promise<number>((resolve, reject) => {
      ws.once('unexpected-response', (req, res) => {
        resolve(res.statusCode ?? 0);
        req.destroy();
      });
      ws.once('open', () => {
        ws.terminate();
        reject(new Error(`upgrade to ${url} was accepted`));
      });
    }),
    WAIT,
    `refusal of ${url}`,
  );
}
