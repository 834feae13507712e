/**
 * Writer schemas travel by fingerprint with the data; a member that meets an unknown one fetches it
 * from the member that sent the data (then from any other). Copy holders learn every writer schema
 * when the data arrives, while its writer is surely alive: decoding later (at a takeover) may happen
 * after the writer died.
 */
import type { Logger } from 'pino';
import type { ClusterChannel, MemberInfo } from '../cluster/types.js';
import type { SessionCodec, SessionData } from '../codec/types.js';
import { messages, type EncodedEntry } from '../codec/messages.js';
import { UnknownSchemaError } from '../errors.js';
import { MSG } from './message-types.js';

export class SchemaSync {
  readonly #channel: ClusterChannel;
  readonly #codec: SessionCodec;
  readonly #log: Logger;
  readonly #timeoutMs: number;
  readonly #known = new Set<string>();

  constructor(channel: ClusterChannel, codec: SessionCodec, log: Logger, timeoutMs: number) {
    this.#channel = channel;
    this.#codec = codec;
    this.#log = log;
    this.#timeoutMs = timeoutMs;
  }

  /** Registers the handler that serves our schemas to others. */
  install(): void {
    this.#channel.handle(MSG.schema, (_from, body) =>
      messages.schemaReply.encode({ json: this.#codec.schemaFor(messages.schema.decode(body).fingerprint) ?? null }),
    );
  }

  /** Asks `first`, then every other live member, for the schema with `fingerprint`. */
  async fetch(fingerprint: string, first?: MemberInfo): Promise<void> {
    const candidates = [...(first ? [first] : []), ...this.#channel.members().filter((m) => m.id !== first?.id)];
    for (const m of candidates) {
      try {
        const reply = messages.schemaReply.decode(
          await this.#channel.request(m.id, MSG.schema, messages.schema.encode({ fingerprint }), { timeoutMs: this.#timeoutMs }),
        );
        if (reply.json !== null) {
          this.#codec.addSchema(reply.json);
          this.#known.add(fingerprint);
          this.#log.info({ fingerprint: fingerprint.slice(0, 16), from: m.route }, 'fetched writer schema');
          return;
        }
      } catch (err) {
        this.#log.warn({ err, from: m.route }, 'schema fetch failed; trying the next member');
      }
    }
    throw new UnknownSchemaError(fingerprint);
  }

  /** Learns every writer schema of `entries` not known yet, from `from` first. */
  async learn(entries: readonly EncodedEntry[], from: MemberInfo | undefined): Promise<void> {
    await this.learnValues(entries.map((x) => x.value), from);
  }

  /** Learns every writer schema of encoded `values` not known yet, from `from` first. */
  async learnValues(values: readonly Buffer[], from: MemberInfo | undefined): Promise<void> {
    for (const fp of this.#unknownValues(values)) {
      if (this.#codec.schemaFor(fp) === undefined) await this.fetch(fp, from);
      this.#known.add(fp);
    }
  }

  /** Writer fingerprints in `entries` not yet known here (usually none: checked without awaiting). */
  unknown(entries: readonly EncodedEntry[]): string[] {
    const unknown: string[] = [];
    for (const { value } of entries) this.#check(value, unknown);
    return unknown;
  }

  #unknownValues(values: readonly Buffer[]): string[] {
    const unknown: string[] = [];
    for (const value of values) this.#check(value, unknown);
    return unknown;
  }

  #check(value: Buffer, unknown: string[]): void {
    const fp = this.#codec.fingerprintOf(value);
    if (fp !== undefined && !this.#known.has(fp) && !unknown.includes(fp)) unknown.push(fp);
  }

  /** Decodes an entry list, fetching each unknown writer schema once. */
  async decode(list: Buffer[]): Promise<SessionData> {
    for (let attempt = 0; ; attempt++) {
      try {
        return this.#codec.decodeEntryList(list);
      } catch (err) {
        if (!(err instanceof UnknownSchemaError) || attempt >= list.length) throw err;
        await this.fetch(err.fingerprint);
      }
    }
  }
}
