/**
 * Message type names on the cluster channel; each body is the Avro record of `src/codec/messages.ts`
 * named beside it. WARNING: names are part of the protocol: add new ones, never rename one.
 */
export const MSG = {
  /** SessionDelta → ApplyReply: a write, from the owner to a copy holder. */
  delta: 'session.delta',
  /** SessionCopy → ApplyReply: a whole session, to a (new) copy holder. */
  copy: 'session.copy',
  /** Remove → ApplyReply: drop a copy after a takeover, or destroy the session (tombstone). */
  remove: 'session.remove',
  /** Locate → LocateReply: what a member holds of one session. */
  locate: 'session.locate',
  /** Take → TakeReply: grant the session to the asker. */
  take: 'session.take',
  /** Locate → TakeReply: the copy a member holds, without granting it (delta mode). */
  fetch: 'session.fetch',
  /** SchemaRequest → SchemaReply: a writer schema by fingerprint. */
  schema: 'session.schema',
  /** empty → empty: the sender is leaving; move the copies it holds for you. */
  leaving: 'session.leaving',
  /** SessionCopy → ApplyReply: a leaving member hands one of its sessions over. */
  handoff: 'session.handoff',
  /** StatePageRequest → StatePageReply: one page of a delta-mode state transfer. */
  statePage: 'session.state-page',
  /**
   * StatePageRequest → StatePackReply: the same page with each session's entries packed in one field
   * (a joiner asks this first, and falls back to `statePage` with a member that has no handler for it).
   */
  statePack: 'session.state-pack',
  /** Audit → AuditReply: anti-entropy, what a member holds of many sessions. */
  audit: 'session.audit',
  /**
   * Audit → SurveyReply: the same, with the members the answerer has a running lease promise to (a
   * member of an older release has no handler: it is asked `audit`, and makes no promises).
   */
  survey: 'session.survey',
  /**
   * Forget → empty: destructions every member acknowledged a while ago; their tombstones may go (a
   * member of an older release has no handler, and keeps them until the session's expiry).
   */
  forget: 'session.forget',
  /** empty → empty: a lease ping; its answer counts toward the sender's lease, and promises it one. */
  lease: 'member.lease',
  /** IndexAnnounce → ApplyReply: a session owner lists, unlists or ends sessions in a principal's index. */
  indexAnnounce: 'principal.announce',
  /** IndexLookup → IndexLookupReply: the sessions a principal's index holder knows of. */
  indexLookup: 'principal.lookup',
} as const;
