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
  /** Epoch ms the session was created (0: unknown, from a member of an older version). */
  createdAt?: number;
  /** Whose session it is (option `principal`); '' for none. */
  principal?: string;
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
  createdAt?: number;
  principal?: string;
}

/** How a copy holder answered a write. */
export type ApplyStatus = 'OK' | 'NEED_FULL' | 'STALE';

export interface ApplyReply {
  status: ApplyStatus;
  /** On STALE: the epoch and owner the holder knows, newer than the writer's. */
  epoch: number;
  owner: string;
}

/**
 * `destroy: false`: drop a copy, the session moved to `owner` at `epoch` (clean-up after a takeover).
 * `destroy: true`: the session was destroyed by its owner (logout, regenerate); holders keep a
 * tombstone until `until` (epoch ms) that fences every copy of `epoch` or older.
 */
export interface RemoveMessage {
  base: string;
  owner: string;
  epoch: number;
  destroy: boolean;
  until: number;
}

export interface LocateMessage {
  base: string;
}

/**
 * What one member holds of a session: a copy (`found`; `primary` when it serves it), or a tombstone of
 * its destruction (`removed`, with the epoch and owner that destroyed it), or nothing. With nothing,
 * `owner` and `epoch` may name the owner it let the session go to (`version` 0), or the ownership and
 * `version` (never 0) of its copy that expired lately.
 */
export interface LocateReply {
  found: boolean;
  primary: boolean;
  owner: string;
  epoch: number;
  version: number;
  removed: boolean;
  /** On the primary: the route of its acknowledged backup ('' when none). */
  backup: string;
}

/** Anti-entropy: what a member holds of each of `bases`. */
export interface AuditMessage {
  bases: string[];
}

export interface AuditReply {
  /** One per base, in the order asked. */
  items: LocateReply[];
}

/** Destructions every member acknowledged: their tombstones may go (`Forget`, no reply). */
export interface ForgetMessage {
  items: { base: string; epoch: number; owner: string }[];
}

/** A route the answering member has a running lease promise to, and for how much longer. */
export interface Promised {
  route: string;
  /** Milliseconds the promise still runs (on the answering member's clock). */
  ms: number;
}

/** A survey's answer: the audit's, and the members the answering one has a running lease promise to. */
export interface SurveyReply extends AuditReply {
  /** Members that may be serving on what this member told them a moment ago: not to be taken over yet. */
  promised: Promised[];
}

export interface TakeMessage {
  base: string;
  /** Route of the member taking the session over. */
  newOwner: string;
  /** How long the taker waits for the answer: a holder that got to it later does not grant it. */
  timeoutMs: number;
  /** The owner this holder names was asked and does not hold the session: grant it anyway. */
  force: boolean;
}

export interface TakeReply {
  /** The session, granted to the taker: `owner` is the taker and `epoch` its new ownership epoch. */
  copy: SessionCopy | null;
  /** With no copy: the route that owns the session now, if this member knows it. */
  movedTo: string | null;
  /** With no copy: this member holds the tombstone of the session's destruction. */
  removed: boolean;
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

/**
 * A session as a packed state transfer page carries it: its entries in one field, in the session
 * table's packed format (`replication/packed-entries.ts`), instead of an array of entry records.
 */
export interface PackedCopy extends Omit<SessionCopy, 'entries'> {
  packed: Buffer;
}

export interface StatePackReply {
  sessions: PackedCopy[];
  /** Offset of the next page; -1 when this was the last. */
  next: number;
  total: number;
}

/**
 * One session in the principal index (soft state on the principal's two ring owners). `kind`: `live`
 * (listed), `unlisted` (its principal changed: drop it from this principal only), `gone` (destroyed or
 * expired: a tombstone fences older announcements of the same session).
 */
export interface IndexItem {
  principal: string;
  base: string;
  kind: 'live' | 'unlisted' | 'gone';
  /** Route of the member owning the session when announced. */
  route: string;
  epoch: number;
  createdAt: number;
  lastAccessAt: number;
  expire: number;
}

/** Index items for one index holder. */
export interface IndexAnnounce {
  items: IndexItem[];
}

export interface IndexLookup {
  principal: string;
}

export interface IndexLookupReply {
  items: IndexItem[];
}

const indexItemSchema = {
  type: 'record',
  name: 'IndexItem',
  fields: [
    { name: 'principal', type: 'string' },
    { name: 'base', type: 'string' },
    { name: 'kind', type: { type: 'enum', name: 'IndexItemKind', symbols: ['live', 'unlisted', 'gone'] } },
    { name: 'route', type: 'string' },
    { name: 'epoch', type: 'long' },
    { name: 'createdAt', type: 'long' },
    { name: 'lastAccessAt', type: 'long' },
    { name: 'expire', type: 'long' },
  ],
};

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

/** Appended after each record's own fields (new fields go last, with a default). */
const ownerFields = [
  { name: 'createdAt', type: 'long', default: 0 },
  { name: 'principal', type: 'string', default: '' },
];

const copySchema = {
  type: 'record',
  name: 'SessionCopy',
  fields: [...copyFields, { name: 'entries', type: { type: 'array', items: entrySchema } }, ...ownerFields],
};

const packedCopySchema = {
  type: 'record',
  name: 'PackedCopy',
  fields: [...copyFields, { name: 'packed', type: 'bytes' }, ...ownerFields],
};

/** A state transfer page of `item` records (whole or packed copies). */
function pageSchema(name: string, item: Readonly<Record<string, unknown>>): Readonly<Record<string, unknown>> {
  return {
    type: 'record',
    name,
    fields: [
      { name: 'sessions', type: { type: 'array', items: item } },
      { name: 'next', type: 'long' },
      { name: 'total', type: 'long' },
    ],
  };
}

const locateReplySchema = {
  type: 'record',
  name: 'LocateReply',
  fields: [
    { name: 'found', type: 'boolean' },
    { name: 'primary', type: 'boolean' },
    { name: 'owner', type: 'string' },
    { name: 'epoch', type: 'long' },
    { name: 'version', type: 'long' },
    { name: 'removed', type: 'boolean', default: false },
    { name: 'backup', type: 'string', default: '' },
  ],
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
      ...ownerFields,
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
      { name: 'destroy', type: 'boolean', default: false },
      { name: 'until', type: 'long', default: 0 },
    ],
  }),
  locate: defineMessage<LocateMessage>({ type: 'record', name: 'Locate', fields: [{ name: 'base', type: 'string' }] }),
  locateReply: defineMessage<LocateReply>(locateReplySchema),
  audit: defineMessage<AuditMessage>({
    type: 'record',
    name: 'Audit',
    fields: [{ name: 'bases', type: { type: 'array', items: 'string' } }],
  }),
  auditReply: defineMessage<AuditReply>({
    type: 'record',
    name: 'AuditReply',
    fields: [{ name: 'items', type: { type: 'array', items: locateReplySchema } }],
  }),
  forget: defineMessage<ForgetMessage>({
    type: 'record',
    name: 'Forget',
    fields: [
      {
        name: 'items',
        type: {
          type: 'array',
          items: {
            type: 'record',
            name: 'Forgotten',
            fields: [
              { name: 'base', type: 'string' },
              { name: 'epoch', type: 'long' },
              { name: 'owner', type: 'string' },
            ],
          },
        },
      },
    ],
  }),
  surveyReply: defineMessage<SurveyReply>({
    type: 'record',
    name: 'SurveyReply',
    fields: [
      { name: 'items', type: { type: 'array', items: locateReplySchema } },
      {
        name: 'promised',
        type: { type: 'array', items: { type: 'record', name: 'Promised', fields: [{ name: 'route', type: 'string' }, { name: 'ms', type: 'int' }] } },
      },
    ],
  }),
  take: defineMessage<TakeMessage>({
    type: 'record',
    name: 'Take',
    fields: [
      { name: 'base', type: 'string' },
      { name: 'newOwner', type: 'string' },
      { name: 'timeoutMs', type: 'long', default: 0 },
      { name: 'force', type: 'boolean', default: false },
    ],
  }),
  takeReply: defineMessage<TakeReply>({
    type: 'record',
    name: 'TakeReply',
    fields: [
      { name: 'copy', type: ['null', copySchema] },
      { name: 'movedTo', type: ['null', 'string'], default: null },
      { name: 'removed', type: 'boolean', default: false },
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
  statePageReply: defineMessage<StatePageReply>(pageSchema('StatePageReply', copySchema)),
  statePackReply: defineMessage<StatePackReply>(pageSchema('StatePackReply', packedCopySchema)),
  indexAnnounce: defineMessage<IndexAnnounce>({
    type: 'record',
    name: 'IndexAnnounce',
    fields: [{ name: 'items', type: { type: 'array', items: indexItemSchema } }],
  }),
  indexLookup: defineMessage<IndexLookup>({ type: 'record', name: 'IndexLookup', fields: [{ name: 'principal', type: 'string' }] }),
  indexLookupReply: defineMessage<IndexLookupReply>({
    type: 'record',
    name: 'IndexLookupReply',
    fields: [{ name: 'items', type: { type: 'array', items: indexItemSchema } }],
  }),
};
