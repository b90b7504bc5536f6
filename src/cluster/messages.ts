// The cluster's wire format: the channels, the kinds of message and their headers. A message is a
// JSON header, then (for some kinds) '\n' and a body: a frame's text or a snapshot. With a
// `secret`, a 22-character HMAC tag precedes it (guard.ts). What arrives is checked by decode.ts.
import type { Target } from '../core/types.js';

/** The kinds of message, by name, and the letters that stand for them on the wire (`k`). */
export const Kind = {
  /** a broadcast: its target and the frame */
  Broadcast: 'b',
  /** a push to one client id */
  Send: 's',
  /** put a client held by the receiver in a room */
  Join: 'j',
  /** take a client held by the receiver out of a room */
  Leave: 'l',
  /** presence delta: the sender now holds a client id */
  Added: '+',
  /** presence delta: the sender no longer holds a client id */
  Removed: '-',
  /** "I am alive", with the sender's presence sequence number */
  Heartbeat: 'h',
  /** a node (re)joining the cluster: everyone answers with a heartbeat */
  Hello: 'hi',
  /** "send me your snapshot" */
  SyncRequest: 'sync',
  /** every client id the sender holds */
  Snapshot: 'snap',
  /** how many clients do you hold (and do you hold this id)? */
  Question: 'q',
  /** the answer to a question */
  Answer: 'a',
  /** the sender leaves the cluster */
  Bye: 'bye',
} as const;
export type Kind = (typeof Kind)[keyof typeof Kind];

/**
 * A header as published. Field names are one letter to keep every message small; only this file
 * spells them (the builders in `header` write them, `decode` reads them).
 */
export interface Header {
  /** from: the origin node's uid; always the first key, so an echo is spotted without parsing */
  f: string;
  /** kind */
  k: Kind;
  /** broadcast target */ t?: Target | undefined;
  /** id shared by the copies of one multi-channel broadcast */ m?: number | undefined;
  /** client id */ i?: string | undefined;
  /** room */ r?: string | undefined;
  /** presence sequence number */ s?: number | undefined;
  /** question id */ q?: number | undefined;
  /** answer: the client count, and whether the id asked about is held */ n?: number | undefined;
  h?: boolean | undefined;
  /** signed messages only: the sender's message counter, and its clock (ms since the epoch) */
  c?: number | undefined;
  w?: number | undefined;
}

/** One builder per kind of header, in the wire's key order. */
export const header = {
  broadcast: (from: string, target: Target | undefined, copy?: number): Header => ({
    f: from,
    k: Kind.Broadcast,
    t: target,
    m: copy,
  }),
  send: (from: string, clientId: string): Header => ({ f: from, k: Kind.Send, i: clientId }),
  join: (from: string, clientId: string, room: string): Header => ({
    f: from,
    k: Kind.Join,
    i: clientId,
    r: room,
  }),
  leave: (from: string, clientId: string, room: string): Header => ({
    f: from,
    k: Kind.Leave,
    i: clientId,
    r: room,
  }),
  added: (from: string, clientId: string, seq: number): Header => ({
    f: from,
    k: Kind.Added,
    i: clientId,
    s: seq,
  }),
  removed: (from: string, clientId: string, seq: number): Header => ({
    f: from,
    k: Kind.Removed,
    i: clientId,
    s: seq,
  }),
  heartbeat: (from: string, seq: number): Header => ({ f: from, k: Kind.Heartbeat, s: seq }),
  hello: (from: string, seq: number): Header => ({ f: from, k: Kind.Hello, s: seq }),
  syncRequest: (from: string): Header => ({ f: from, k: Kind.SyncRequest }),
  snapshot: (from: string, seq: number): Header => ({ f: from, k: Kind.Snapshot, s: seq }),
  question: (from: string, question: number, clientId: string | undefined): Header => ({
    f: from,
    k: Kind.Question,
    q: question,
    i: clientId,
  }),
  answer: (from: string, question: number, count: number, has: boolean): Header => ({
    f: from,
    k: Kind.Answer,
    q: question,
    n: count,
    h: has,
  }),
  bye: (from: string): Header => ({ f: from, k: Kind.Bye }),
};

type K = typeof Kind;

/**
 * A received message that passed `decode`, with named fields: only those its kind uses, each
 * checked. `counter` and `sentAt` are set when the message was signed.
 */
export type Message = { readonly from: string; counter?: number; sentAt?: number } & (
  | {
      readonly kind: K['Broadcast'];
      readonly target: Target | undefined;
      /** id shared by the copies of one multi-channel broadcast */
      readonly copy: number | undefined;
      readonly frame: string;
    }
  | { readonly kind: K['Send']; readonly clientId: string; readonly frame: string }
  | { readonly kind: K['Join'] | K['Leave']; readonly clientId: string; readonly room: string }
  | { readonly kind: K['Added'] | K['Removed']; readonly clientId: string; readonly seq: number }
  | { readonly kind: K['Heartbeat'] | K['Hello']; readonly seq: number }
  | { readonly kind: K['SyncRequest'] }
  | { readonly kind: K['Bye'] }
  | { readonly kind: K['Snapshot']; readonly seq: number; readonly ids: readonly string[] }
  | {
      readonly kind: K['Question'];
      readonly question: number;
      readonly clientId: string | undefined;
    }
  | {
      readonly kind: K['Answer'];
      readonly question: number;
      readonly count: number;
      readonly has: boolean;
    }
);

/** Longest client id or room name a cluster message carries. */
export const MAX_NAME = 1024;
/** Longest header (characters); big `to` / `rooms` / `except` lists are what makes one long. */
export const MAX_HEADER = 1024 * 1024;
/** Longest snapshot (a node's client ids as JSON): about 600,000 ids of 21 characters. */
export const MAX_SNAPSHOT = 16 * 1024 * 1024;
/** Characters of the HMAC tag in front of a signed message (16 bytes, base64url). */
export const TAG_LENGTH = 22;

/** What a channel a message arrived on may carry: a node's own channel, a room's, or `:all`. */
export type Via = 'all' | 'node' | 'room';

/** A cluster's channels (`prefix` first): `:all` every node, `:node:<uid>` one node, `:room:<room>` the nodes hosting a member. */
export class Channels {
  readonly all: string;
  /** this node's own */
  readonly node: string;
  readonly #room: string;

  constructor(
    readonly prefix: string,
    uid: string,
  ) {
    this.all = `${prefix}:all`;
    this.node = this.nodeOf(uid);
    this.#room = `${prefix}:room:`;
  }

  nodeOf(uid: string): string {
    return `${this.prefix}:node:${uid}`;
  }

  room(room: string): string {
    return this.#room + room;
  }

  /** The class of a channel this node subscribes to; undefined for any other. */
  via(channel: string): Via | undefined {
    if (channel === this.all) return 'all';
    if (channel === this.node) return 'node';
    return channel.startsWith(this.#room) ? 'room' : undefined;
  }
}

/** Encodes a header and an optional body. Throws only for what our own code put in the header. */
export function encode(header: Header, body?: string): string {
  const head = JSON.stringify(header);
  return body === undefined ? head : `${head}\n${body}`;
}
