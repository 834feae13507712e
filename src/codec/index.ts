/**
 * The codec layer: Avro (`avsc`) encodings of session values and of cluster messages. Pure: no
 * I/O, no timers. Everything read from the wire fails only with `CodecError` or
 * `UnknownSchemaError`; every value that cannot be replicated is refused with a
 * `SessionUnserializableError` naming its path.
 */
export type { SessionCodec, SessionData, MessageCodec } from './types.js';
export { createSessionCodec, FORMAT_VERSION, HEADER_BYTES, type SessionCodecOptions } from './session-codec.js';
export { defineMessage } from './message-codec.js';
export { compactCopy, compactDelta, type CompactDeltaState } from './compact-delta.js';
export { SESSION_VALUE_TYPE } from './dynamic-schema.js';
export { MAX_DEPTH } from './value-check.js';
