// The cluster's gates. The Outbox is what leaves a node for the broker: checked against what
// receivers accept, signed and stamped with a secret, bounded while unacknowledged, and shut for
// good once the node has said bye. The Inbox is what enters from the broker: size, signature,
// messages.ts's per-kind checks, then (with a secret) freshness, before the adapter reads a field.
import { createHmac, createSecretKey, timingSafeEqual, type KeyObject } from 'node:crypto';
import type { AdapterHost } from '../core/adapter.js';
import type { Frame } from '../core/protocol.js';
import type { Target } from '../core/types.js';
import type { ResolvedClusterOptions } from './options.js';
import { decode } from './decode.js';
import {
  encode,
  MAX_HEADER,
  MAX_NAME,
  MAX_SNAPSHOT,
  TAG_LENGTH,
  type Header,
  type Message,
  type Via,
} from './messages.js';

/** At most one report per this many ms for each kind of repeated trouble (bad messages, refusals). */
export const REPORT_INTERVAL = 10_000;
/**
 * With a secret: a signed message stamped further than this from the receiver's clock is dropped
 * (a replay from the past, or clocks out of sync), and a sender's counters are kept this long
 * after its last message, so nothing it sent can be replayed while they would still accept it.
 */
export const REPLAY_WINDOW = 30_000;

/** Lets the first of a run of similar errors through at once, then one per `REPORT_INTERVAL` with a count. */
export class Throttle {
  #next = 0;
  #held = 0;
  /** @returns the number held back since the last report, or -1 if this one is held back too */
  admit(): number {
    const t = performance.now();
    if (t < this.#next) {
      this.#held++;
      return -1;
    }
    this.#next = t + REPORT_INTERVAL;
    const held = this.#held;
    this.#held = 0;
    return held;
  }
}

type Options = Pick<
  ResolvedClusterOptions,
  'prefix' | 'maxFrameSize' | 'maxPendingMessages' | 'maxPendingBytes'
>;
type Publish = (channel: string, message: string) => Promise<unknown> | false;

export class Outbox {
  readonly #publish: Publish;
  readonly #o: Options;
  readonly #signer: Signer | undefined;
  readonly #host: AdapterHost;
  readonly #refusals = new Throttle();
  /** signed messages published (the copies of a multi-channel broadcast share a number) */
  #out = 0;
  /** messages handed to the broker and not acknowledged yet, and their characters */
  #inflight = 0;
  #bytes = 0;
  /** set once the node has said bye */
  #shut = false;
  /** messages dropped since the in-flight bound was reached; undefined while under it */
  #stall: { dropped: number } | undefined;

  constructor(publish: Publish, options: Options, signer: Signer | undefined, host: AdapterHost) {
    this.#publish = publish;
    this.#o = options;
    this.#signer = signer;
    this.#host = host;
  }

  /** Stamps, encodes and sends one message. @returns whether it was handed to the broker */
  publish(channel: string, header: Header, body?: string): boolean {
    return this.send(channel, encode(this.stamp(header), body));
  }

  /**
   * Nothing more leaves this node: the bye is sent, and a late answer, delta or broadcast would
   * make other nodes take it for alive again.
   */
  shut(): void {
    this.#shut = true;
  }

  /** With a secret, numbers and dates a header so that receivers can refuse a replay of it. */
  stamp(header: Header): Header {
    if (this.#signer) {
      header.c = ++this.#out;
      header.w = Date.now();
    }
    return header;
  }

  /**
   * Publishes (signed, with a secret) unless `maxPendingMessages` / `maxPendingBytes` are already
   * in flight: a broker that stalls (paused, swapping, SIGSTOPped) with the connection up then
   * costs a bounded amount of memory, and the messages past the bound are dropped and counted,
   * reported once per stall. @returns whether the message was handed to the broker
   */
  send(channel: string, message: string): boolean {
    if (this.#shut) return false;
    if (this.#inflight >= this.#o.maxPendingMessages || this.#bytes >= this.#o.maxPendingBytes)
      return this.#overflow();
    const sent = this.#publish(
      channel,
      this.#signer ? this.#signer.sign(channel, message) : message,
    );
    if (!sent) return false;
    const size = message.length;
    this.#inflight++;
    this.#bytes += size;
    const release = (): void => this.#release(size);
    sent.then(release, release);
    return true;
  }

  /** Reports something this node will not publish because every receiver would drop it. */
  refuse(why: string): false {
    const held = this.#refusals.admit();
    if (held >= 0) {
      const more = held > 0 ? `; ${held} more refused since the last report` : '';
      this.#host.reportError(new Error(`wshub cluster: ${why}; not sent to other nodes${more}`));
    }
    return false;
  }

  /** Whether a client id or room name can cross nodes (else refused). */
  name(name: string, what: string): boolean {
    return (
      name.length <= MAX_NAME ||
      this.refuse(`a ${what} of ${name.length} characters exceeds ${MAX_NAME}`)
    );
  }

  /** Whether a frame fits `maxFrameSize` in UTF-8 bytes (else refused); counts bytes only when it may not. */
  fits(frame: Frame): boolean {
    const max = this.#o.maxFrameSize;
    const { length } = frame.text;
    if (length <= max && (length * 3 <= max || Buffer.byteLength(frame.text) <= max)) return true;
    return this.refuse(
      `a frame of ${Buffer.byteLength(frame.text)} bytes exceeds maxFrameSize (${max})`,
    );
  }

  /** Whether every name in a broadcast target can cross nodes (else refused). */
  targetFits(target: Target | undefined): boolean {
    if (!target) return true;
    for (const list of [target.to, target.rooms, target.except]) {
      for (const name of list ?? []) if (!this.name(name, 'target name')) return false;
    }
    return true;
  }

  #overflow(): false {
    if (this.#stall) {
      this.#stall.dropped++;
      return false;
    }
    this.#stall = { dropped: 1 };
    const { maxPendingMessages, maxPendingBytes } = this.#o;
    this.#host.reportError(
      new Error(
        `wshub cluster: the broker has not acknowledged ${this.#inflight} messages (${this.#bytes} characters; ` +
          `maxPendingMessages ${maxPendingMessages}, maxPendingBytes ${maxPendingBytes}); dropping messages for other nodes until it catches up`,
      ),
    );
    return false;
  }

  #release(size: number): void {
    this.#inflight--;
    this.#bytes -= size;
    const { maxPendingMessages, maxPendingBytes } = this.#o;
    if (
      !this.#stall ||
      this.#inflight > maxPendingMessages / 2 ||
      this.#bytes > maxPendingBytes / 2
    )
      return;
    const { dropped } = this.#stall;
    this.#stall = undefined;
    this.#host.logger.warn?.(
      { prefix: this.#o.prefix, dropped },
      'wshub: the broker acknowledges again; `dropped` messages for other nodes were lost meanwhile',
    );
  }
}

export class Inbox {
  readonly #signer: Signer | undefined;
  /** a message longer than this is dropped unread */
  readonly #max: number;
  readonly #decoding: { readonly maxFrameSize: number; readonly authentic: boolean };
  /** with a secret: per sender uid, the last counter seen per channel, kept while `until` is ahead */
  readonly #counters = new Map<string, { readonly last: Map<string, number>; until: number }>();

  constructor(maxFrameSize: number, signer: Signer | undefined) {
    this.#signer = signer;
    this.#max = TAG_LENGTH + MAX_HEADER + 1 + Math.max(maxFrameSize, MAX_SNAPSHOT);
    this.#decoding = { maxFrameSize, authentic: signer !== undefined };
  }

  /**
   * Checks one message from the broker whole: size, signature (with a secret), every field of its
   * kind, and (with a secret) that it is not a replay. Never throws.
   * @param via - the class of channel it arrived on; undefined for a channel this node never uses
   * @returns the message, or why it is refused
   */
  accept(message: string, channel: string, via: Via | undefined): Message | string {
    if (message.length > this.#max) return `message of ${message.length} characters`;
    const opened = this.#signer ? this.#signer.open(channel, message) : message;
    if (opened === undefined) return 'bad or missing signature';
    if (!via) return 'not a channel of this node';
    const m = decode(opened, via, this.#decoding);
    if (typeof m === 'string' || !this.#signer) return m;
    return this.#stale(m, channel) ?? m;
  }

  /** Why a signed message is not new, if it is not: stamped outside REPLAY_WINDOW, or numbered at or below its sender's last on this channel. */
  #stale(m: Message, channel: string): string | undefined {
    const t = Date.now();
    const skew = t - m.sentAt!;
    if (Math.abs(skew) > REPLAY_WINDOW)
      return `stamped ${skew} ms from this node's clock (a replay, or clocks out of sync)`;
    let counters = this.#counters.get(m.from);
    if (!counters) this.#counters.set(m.from, (counters = { last: new Map(), until: 0 }));
    if (m.counter! <= (counters.last.get(channel) ?? 0)) return 'a replayed message';
    counters.last.set(channel, m.counter!);
    counters.until = t + REPLAY_WINDOW;
    return undefined;
  }

  /** Forgets the counters of senders silent for REPLAY_WINDOW (their old messages are stale by date). */
  prune(): void {
    const t = Date.now();
    for (const [uid, { until }] of this.#counters) if (until < t) this.#counters.delete(uid);
  }
}

/**
 * HMAC-SHA256 over the channel and the message, truncated to 16 bytes: a node without the secret
 * can neither forge a message nor move a signed one to another channel.
 */
export class Signer {
  readonly #key: KeyObject; // imported once: createHmac with raw bytes would import them per message
  constructor(key: Uint8Array) {
    this.#key = createSecretKey(key);
  }

  #tag(channel: string, message: string): string {
    return createHmac('sha256', this.#key)
      .update(`${channel.length}:${channel}`)
      .update(message)
      .digest()
      .subarray(0, 16)
      .toString('base64url');
  }

  sign(channel: string, message: string): string {
    return this.#tag(channel, message) + message;
  }

  /** The message without its tag if the tag is right, else `undefined`. */
  open(channel: string, signed: string): string | undefined {
    if (signed.length < TAG_LENGTH) return undefined;
    const message = signed.slice(TAG_LENGTH);
    const expected = Buffer.from(this.#tag(channel, message), 'latin1');
    const got = Buffer.from(signed.slice(0, TAG_LENGTH), 'latin1');
    return got.length === TAG_LENGTH && timingSafeEqual(got, expected) ? message : undefined;
  }
}
