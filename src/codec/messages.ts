/**
 * Avro schemas of the replication messages, one per message type. The cluster layer carries them as
 * opaque bodies; session values inside are already encoded by the session codec (`bytes`).
 */
import { defineMessage } from './message-codec.js';

/** One encoded top-level session key. */
export interface EncodedEntry {
  key: string;
  value: Buffer;
}

/** A whole session as it travels: a full copy, a takeover's answer, a state transfer's item. */
export interface SessionCopy {
  base: string;
  owner: string;
  epoch: number;
  version: number;
  expire: number;
  /** koa-session's maxAge in ms; -1 stands for 'session' (browser-session cookie). */
  maxAge: number;
  entries: EncodedEntry[];
}

/** A write: the keys set and removed, applied onto `baseVersion` to make `version`. */
export interface SessionDeltaMessage {
  base: string;
  owner: string;
  epoch: number;
  version: number;
  baseVersion: number;
  expire: number;
  maxAge: number;
  set: EncodedEntry[];
  removed: string[];
}

/** How a copy holder answered a write. */
export type ApplyStatus = 'OK' | 'NEED_FULL' | 'STALE';

export interface ApplyReply {
  status: ApplyStatus;
  /** On STALE: the epoch and owner the holder knows, newer than the writer's. */
  epoch: number;
  owner: string;
}

export interface RemoveMessage {
  base: string;
  owner: string;
  epoch: number;
}

export interface LocateMessage {
  base: string;
}

export interface LocateReply {
  found: boolean;
  primary: boolean;
  owner: string;
  epoch: number;
  version: number;
}

export interface TakeMessage {
  base: string;
  /** Route of the member taking the session over. */
  newOwner: string;
}

export interface TakeReply {
  copy: SessionCopy | null;
  /** With no copy: the route the session was just handed to, if this member knows it. */
  movedTo: string | null;
}

export interface SchemaRequest {
  fingerprint: string;
}

export interface SchemaReply {
  json: string | null;
}

export interface StatePageRequest {
  /** Transfer id chosen by the joiner: the sender keeps one snapshot of its bases per transfer. */
  transfer: string;
  offset: number;
  limit: number;
}

export interface StatePageReply {
  sessions: SessionCopy[];
  /** Offset of the next page; -1 when this was the last. */
  next: number;
  total: number;
}

const entrySchema = {
  type: 'record',
  name: 'EncodedEntry',
  fields: [
    { name: 'key', type: 'string' },
    { name: 'value', type: 'bytes' },
  ],
};

const copyFields = [
  { name: 'base', type: 'string' },
  { name: 'owner', type: 'string' },
  { name: 'epoch', type: 'long' },
  { name: 'version', type: 'long' },
  { name: 'expire', type: 'long' },
  { name: 'maxAge', type: 'long' },
];

const copySchema = {
  type: 'record',
  name: 'SessionCopy',
  fields: [...copyFields, { name: 'entries', type: { type: 'array', items: entrySchema } }],
};

/** Message codecs by type name. */
export const messages = {
  copy: defineMessage<SessionCopy>(copySchema),
  delta: defineMessage<SessionDeltaMessage>({
    type: 'record',
    name: 'SessionDelta',
    fields: [
      ...copyFields,
      { name: 'baseVersion', type: 'long' },
      { name: 'set', type: { type: 'array', items: entrySchema } },
      { name: 'removed', type: { type: 'array', items: 'string' } },
    ],
  }),
  applyReply: defineMessage<ApplyReply>({
    type: 'record',
    name: 'ApplyReply',
    fields: [
      { name: 'status', type: { type: 'enum', name: 'ApplyStatus', symbols: ['OK', 'NEED_FULL', 'STALE'] } },
      { name: 'epoch', type: 'long' },
      { name: 'owner', type: 'string' },
    ],
  }),
  remove: defineMessage<RemoveMessage>({
    type: 'record',
    name: 'Remove',
    fields: [
      { name: 'base', type: 'string' },
      { name: 'owner', type: 'string' },
      { name: 'epoch', type: 'long' },
    ],
  }),
  locate: defineMessage<LocateMessage>({ type: 'record', name: 'Locate', fields: [{ name: 'base', type: 'string' }] }),
  locateReply: defineMessage<LocateReply>({
    type: 'record',
    name: 'LocateReply',
    fields: [
      { name: 'found', type: 'boolean' },
      { name: 'primary', type: 'boolean' },
      { name: 'owner', type: 'string' },
      { name: 'epoch', type: 'long' },
      { name: 'version', type: 'long' },
    ],
  }),
  take: defineMessage<TakeMessage>({
    type: 'record',
    name: 'Take',
    fields: [
      { name: 'base', type: 'string' },
      { name: 'newOwner', type: 'string' },
    ],
  }),
  takeReply: defineMessage<TakeReply>({
    type: 'record',
    name: 'TakeReply',
    fields: [
      { name: 'copy', type: ['null', copySchema] },
      { name: 'movedTo', type: ['null', 'string'], default: null },
    ],
  }),
  schema: defineMessage<SchemaRequest>({
    type: 'record',
    name: 'SchemaRequest',
    fields: [{ name: 'fingerprint', type: 'string' }],
  }),
  schemaReply: defineMessage<SchemaReply>({
    type: 'record',
    name: 'SchemaReply',
    fields: [{ name: 'json', type: ['null', 'string'] }],
  }),
  statePage: defineMessage<StatePageRequest>({
    type: 'record',
    name: 'StatePageRequest',
    fields: [
      { name: 'transfer', type: 'string' },
      { name: 'offset', type: 'long' },
      { name: 'limit', type: 'int' },
    ],
  }),
  statePageReply: defineMessage<StatePageReply>({
    type: 'record',
    name: 'StatePageReply',
    fields: [
      { name: 'sessions', type: { type: 'array', items: copySchema } },
      { name: 'next', type: 'long' },
      { name: 'total', type: 'long' },
    ],
  }),
};
