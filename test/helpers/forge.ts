// What an attacker with PUBLISH rights on the prefix would send: cluster messages built by hand,
// optionally signed with a key of their choosing.
import { Signer } from '../../src/cluster/guard.ts';
import { encode, type Header } from '../../src/cluster/messages.ts';
import { encode as encodeReply } from '../../src/core/protocol.ts';

/** A push frame, as a node encodes it. */
export const encodeFrame = (actioncode: string, data: unknown): string =>
  encodeReply(0, 'success', actioncode, data);

/** A well-formed cluster message (header, then the body after '\n'), unsigned. */
export const forge = (header: Header, body?: string): string => encode(header, body);

/** `message` signed for `channel` with `key`, as a node holding that key would sign it. */
export const sign = (key: string, channel: string, message: string): string =>
  new Signer(Buffer.from(key)).sign(channel, message);
